"""Bad and hostile input against a running `voicebot serve`: right response, clear log line, no crash, no leak."""

from __future__ import annotations

import random
import signal
import socket
import struct
import time
from pathlib import Path

import pytest

from tests.integration.rawsip import RawPeer, media_port, sdp_offer
from tests.integration.support import ServerProcess, start_server, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def options_ok(server: ServerProcess) -> bool:
    peer = RawPeer((server.host, server.port))
    try:
        peer.send(peer.request("OPTIONS", server.uri))
        reply = peer.wait_reply("OPTIONS")
        return reply is not None and reply.status == 200
    finally:
        peer.close()


def rtp_packet(seq: int, ts: int, ssrc: int, payload: bytes = b"\xff" * 160, pt: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def count_rtp(sock: socket.socket, seconds: float) -> int:
    sock.settimeout(0.05)
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            sock.recvfrom(2048)
            n += 1
        except socket.timeout:
            pass
    return n


class Caller:
    """A raw caller with an RTP socket: INVITE → 200 → ACK, then whatever the test does."""

    def __init__(self, server: ServerProcess, bind_host: str = "127.0.0.1") -> None:
        self.server = server
        self.peer = RawPeer((server.host, server.port), bind_host)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((bind_host, 0))
        self.to_tag: str | None = None
        self.server_media: tuple[str, int] | None = None

    def invite(self, payloads: str = "0 101", direction: str = "sendrecv") -> int:
        body = sdp_offer(self.peer.host, self.rtp.getsockname()[1], payloads, direction)
        self.peer.send(self.peer.request("INVITE", self.server.uri, body=body, content_type="application/sdp",
                                         cseq=1))
        reply = self.peer.wait_reply("INVITE", timeout=10)
        assert reply is not None, "no final response to INVITE"
        if reply.status == 200:
            to = reply.header("to") or ""
            self.to_tag = to.split("tag=")[1].split(";")[0]
            self.server_media = (self.server.host, media_port(reply.body))
            self.ack(1)
        return reply.status

    def ack(self, cseq: int) -> None:
        self.peer.send(self.peer.request("ACK", self.server.uri, to_tag=self.to_tag, cseq=cseq))

    def reinvite(self, direction: str) -> tuple[int, str]:
        body = sdp_offer(self.peer.host, self.rtp.getsockname()[1], direction=direction)
        msg = self.peer.request("INVITE", self.server.uri, to_tag=self.to_tag, body=body,
                                content_type="application/sdp")
        cseq = self.peer.cseq
        self.peer.send(msg)
        reply = self.peer.wait_reply("INVITE", timeout=5)
        assert reply is not None
        if reply.status == 200:
            self.ack(cseq)
        return reply.status, reply.body

    def bye(self) -> int | None:
        self.peer.send(self.peer.request("BYE", self.server.uri, to_tag=self.to_tag))
        reply = self.peer.wait_reply("BYE")
        return reply.status if reply else None

    def close(self) -> None:
        self.peer.close()
        self.rtp.close()


def test_garbage_truncated_and_malformed_datagrams(voicebot_server: ServerProcess) -> None:
    peer = RawPeer((voicebot_server.host, voicebot_server.port))
    rng = random.Random(4475)
    try:
        for _ in range(30):
            peer.send(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1400))))
        peer.send(b"\x00" * 1000)
        assert peer.recv(0.5) is None  # no response can be formed for any of these
        # Cut after its Via: the Via routes a 400 saying what is missing.
        peer.send(b"INVITE sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5;bran")
        cut = peer.recv(2.0)
        assert cut is not None and cut.startswith(b"SIP/2.0 400 Bad Request (missing mandatory header"), cut
        # Content-Length larger than the body (a truncated datagram): 400 (RFC 4475 §3.1.2.2).
        body = sdp_offer("127.0.0.1", 40000)
        msg = peer.request("INVITE", voicebot_server.uri, body=body, content_type="application/sdp")
        peer.send(msg[:-40])
        reply = peer.wait_reply("INVITE")
        assert reply is not None and reply.status == 400
    finally:
        peer.close()
    assert options_ok(voicebot_server)
    assert voicebot_server.proc.poll() is None
    assert voicebot_server.records("bad SIP message dropped"), "garbage must leave a clear log line"


def test_oversized_message_gets_513_and_server_keeps_serving(tmp_path: Path) -> None:
    server = start_server(tmp_path, "limits: {max_message_bytes: 16384}")
    try:
        peer = RawPeer((server.host, server.port))
        big = "X-Padding: " + "a" * 64000 + "\r\n"
        peer.send(peer.request("OPTIONS", server.uri, extra=big))
        reply = peer.wait_reply("OPTIONS")
        assert reply is not None and reply.status == 513
        peer.close()
        assert options_ok(server)
    finally:
        stop_server(server)


def test_no_common_codec_gets_488(voicebot_server: ServerProcess) -> None:
    caller = Caller(voicebot_server)
    try:
        assert caller.invite(payloads="18", ) == 488  # G.729 only
    finally:
        caller.close()
    assert voicebot_server.wait_for("call rejected: no common codec")


def test_bye_for_unknown_dialog_gets_481(voicebot_server: ServerProcess) -> None:
    peer = RawPeer((voicebot_server.host, voicebot_server.port))
    try:
        peer.send(peer.request("BYE", voicebot_server.uri, to_tag="nosuchdialog"))
        reply = peer.wait_reply("BYE")
        assert reply is not None and reply.status == 481
    finally:
        peer.close()


def test_unknown_method_gets_501(voicebot_server: ServerProcess) -> None:
    peer = RawPeer((voicebot_server.host, voicebot_server.port))
    try:
        peer.send(peer.request("FROBNICATE", voicebot_server.uri))
        reply = peer.wait_reply("FROBNICATE")
        assert reply is not None and reply.status == 501
        assert "INVITE" in (reply.header("allow") or "")
    finally:
        peer.close()


def test_rtp_from_wrong_source_is_dropped_and_counted(voicebot_server: ServerProcess) -> None:
    caller = Caller(voicebot_server)
    intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    intruder.bind(("127.0.0.1", 0))
    try:
        assert caller.invite() == 200
        assert caller.server_media is not None
        for i in range(25):  # the real caller talks first: voicebot latches onto it
            caller.rtp.sendto(rtp_packet(i, i * 160, 0x1234), caller.server_media)
            time.sleep(0.02)
        for i in range(20):
            intruder.sendto(rtp_packet(1000 + i, 99999 + i * 160, 0x6666), caller.server_media)
        assert count_rtp(caller.rtp, 0.3) > 5  # voicebot still sends to the caller
        assert caller.bye() == 200
    finally:
        caller.close()
        intruder.close()
    ended = voicebot_server.wait_for("call ended")[0]
    assert ended["rtp_wrong_source"] == 20
    assert ended["end_reason"] == "remote hangup"


def test_cancel_before_answer(tmp_path: Path) -> None:
    server = start_server(tmp_path, "answer_delay_s: 3")
    caller = Caller(server)
    try:
        peer = caller.peer
        body = sdp_offer(peer.host, caller.rtp.getsockname()[1])
        invite = peer.request("INVITE", server.uri, body=body, content_type="application/sdp", cseq=1,
                              branch="z9hG4bKcancelme")
        peer.send(invite)
        ringing = peer.wait_reply("INVITE", final=False)
        assert ringing is not None and ringing.status in (100, 180)
        cancel = invite.split("\r\n")
        cancel_msg = (f"CANCEL {server.uri} SIP/2.0\r\n" + "\r\n".join(
            line for line in cancel[1:] if line.split(":")[0] in ("Via", "From", "To", "Call-ID", "Max-Forwards"))
            + "\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n")
        peer.send(cancel_msg)
        cancel_reply = peer.wait_reply("CANCEL")
        assert cancel_reply is not None and cancel_reply.status == 200
        final = peer.wait_reply("INVITE")
        assert final is not None and final.status == 487
        ended = server.wait_for("call ended")[0]
        assert ended["end_reason"] == "cancelled"
    finally:
        caller.close()
        stop_server(server)


def test_hold_and_resume_with_reinvite(voicebot_server: ServerProcess) -> None:
    caller = Caller(voicebot_server)
    try:
        assert caller.invite() == 200
        assert count_rtp(caller.rtp, 0.5) > 15
        status, body = caller.reinvite("sendonly")
        assert status == 200 and "a=recvonly" in body
        time.sleep(0.1)
        assert count_rtp(caller.rtp, 0.6) <= 2  # on hold: voicebot stops sending
        status, body = caller.reinvite("sendrecv")
        assert status == 200 and "a=sendrecv" in body
        assert count_rtp(caller.rtp, 0.5) > 15
        assert caller.bye() == 200
    finally:
        caller.close()


def test_source_not_in_acl_is_refused(tmp_path: Path) -> None:
    server = start_server(tmp_path, "acl: {allow: [127.0.0.1/32]}")
    caller = Caller(server, bind_host="127.0.0.2")
    try:
        assert caller.invite() == 403
        assert options_ok(server)  # 127.0.0.1 is still served
    finally:
        caller.close()
        stop_server(server)


def test_sigterm_refuses_new_calls_and_lets_current_ones_finish(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    first = Caller(server)
    second = Caller(server)
    try:
        assert first.invite() == 200
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert second.invite() == 503
        assert server.proc.poll() is None  # still serving the call in progress
        # The call in progress goes on: keying '#' ends the demo flow, voicebot says goodbye and hangs up.
        first.peer.send(first.peer.request("INFO", server.uri, to_tag=first.to_tag, body="Signal=#\r\nDuration=100\r\n",
                                           content_type="application/dtmf-relay"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(r.startswith("BYE ") for r in first.peer.requests):
            first.peer.wait_reply("INFO", timeout=0.5)
        byes = [r for r in first.peer.requests if r.startswith("BYE ")]
        assert byes, "voicebot did not finish the call in progress"
        assert server.proc.wait(15) == 0
        stopped = server.wait_for("stopped")[0]
        assert stopped["rtp_ports_in_use"] == 0  # every media port of every call was released
        assert stopped["calls_total"] == 1  # the INVITE refused with 503 never became a call
    finally:
        first.close()
        second.close()
        stop_server(server)


def test_flood_from_one_source_is_throttled_while_another_source_is_served(voicebot_server: ServerProcess) -> None:
    flooder = RawPeer((voicebot_server.host, voicebot_server.port), bind_host="127.0.0.2")
    answered = 0
    try:
        for _ in range(1500):  # bounded flood, loopback only
            flooder.send(flooder.request("OPTIONS", voicebot_server.uri))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and flooder.recv(0.3) is not None:
            answered += 1
        assert answered < 200, f"{answered} of 1500 flood requests were answered"
        caller = Caller(voicebot_server)  # 127.0.0.1: a different source
        try:
            assert caller.invite() == 200
            assert caller.bye() == 200
        finally:
            caller.close()
        # The flooding source is banned for a while: even a polite request is ignored now.
        flooder.send(flooder.request("OPTIONS", voicebot_server.uri))
        assert flooder.wait_reply("OPTIONS", timeout=1.0) is None
    finally:
        flooder.close()
    limited = voicebot_server.wait_for("requests from source rate-limited")
    assert limited[0]["src"] == "127.0.0.2"


def test_scanner_user_agent_gets_no_answer(voicebot_server: ServerProcess) -> None:
    peer = RawPeer((voicebot_server.host, voicebot_server.port), bind_host="127.0.0.3")
    try:
        peer.send(peer.request("OPTIONS", voicebot_server.uri, extra="User-Agent: friendly-scanner\r\n"))
        assert peer.wait_reply("OPTIONS", timeout=1.0) is None
    finally:
        peer.close()
    assert options_ok(voicebot_server)
