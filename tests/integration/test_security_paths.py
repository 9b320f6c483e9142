"""Attacks on a running `voicebot serve` over real SIP/RTP on loopback: transfer allowlist bypass, event-loop stalls."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.integration.rawsip import RawPeer, sdp_offer
from tests.integration.support import (
    ServerProcess,
    launch_server,
    stop_server,
    write_config,
)
from tests.integration.test_bad_input import Caller

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _server_with_transfer_targets(workdir: Path, patterns: str) -> ServerProcess:
    config = workdir / "voicebot.yaml"
    write_config(config)
    text = config.read_text().replace('transfer: {allowed_targets: ["sip:agent@127.0.0.1:*"]}',
                                      f"transfer: {{allowed_targets: [{patterns}]}}")
    config.write_text(text)
    return launch_server(config, workdir)


def _sink(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock


def _first_datagram(sock: socket.socket, timeout: float) -> bytes | None:
    sock.settimeout(timeout)
    try:
        return sock.recvfrom(70000)[0]
    except TimeoutError:
        return None


def _refer(caller: Caller, target: str) -> int | None:
    peer = caller.peer
    peer.send(peer.request("REFER", caller.server.uri, to_tag=caller.to_tag,
                           extra=f"Refer-To: <{target}>\r\nReferred-By: <sip:raw@{peer.host}:{peer.port}>\r\n"))
    reply = peer.wait_reply("REFER", timeout=5)
    return reply.status if reply else None


def test_refer_with_maddr_cannot_escape_the_transfer_allowlist(tmp_path: Path) -> None:
    """15.3: `sip:*@127.0.0.1:*` must not allow a REFER whose maddr sends the INVITE to another host."""
    server = _server_with_transfer_targets(tmp_path, '"sip:*@127.0.0.1:*"')
    premium = _sink("127.0.0.9")  # where the toll-fraud REFER tries to make voicebot dial
    allowed = _sink("127.0.0.1")
    caller = Caller(server)
    try:
        assert caller.invite() == 200
        port = allowed.getsockname()[1]
        attack = f"sip:+19005550199@127.0.0.1:{port};maddr=127.0.0.9"
        assert _refer(caller, attack) == 403
        for smuggled in (f"sip:+19005550199@127.0.0.1:{port};transport=tcp;maddr=127.0.0.9",
                         f"sip:x@127.0.0.1.evil.example:{port}", f"sips:x@127.0.0.1:{port}"):
            assert _refer(caller, smuggled) == 403, smuggled
        assert _first_datagram(premium, 1.5) is None, "voicebot dialled the maddr host"
        refused = server.records("REFER refused: target not allowed")
        assert any("maddr=127.0.0.9" in entry["target"] for entry in refused)

        # The pattern still works for what it names: the plain URI is followed and its INVITE arrives.
        assert _refer(caller, f"sip:agent@127.0.0.1:{port}") == 202
        invite = _first_datagram(allowed, 10.0)
        assert invite is not None and invite.startswith(b"INVITE sip:agent@127.0.0.1:"), invite
        assert _first_datagram(premium, 0.2) is None
        caller.bye()
    finally:
        caller.close()
        premium.close()
        allowed.close()
        stop_server(server)


class _ArrivalClock:
    """Receives RTP on a caller's socket in a thread and keeps each packet's arrival time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.arrivals: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            self.arrivals.append(time.monotonic())

    def wait_packets(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.arrivals) >= count, f"only {len(self.arrivals)} RTP packets within {timeout}s"

    def largest_gap(self, since: float, until: float) -> float:
        times = [since] + [t for t in self.arrivals if since <= t <= until] + [until]
        return max(b - a for a, b in itertools.pairwise(times))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def _big_invite(server: ServerProcess, peer: RawPeer, rtp_port: int, display: str) -> str:
    body = sdp_offer(peer.host, rtp_port)
    msg = peer.request("INVITE", server.uri, body=body, content_type="application/sdp", cseq=1)
    return msg.replace(f"From: <sip:raw@{peer.host}:{peer.port}>", f'From: "{display}" <sip:raw@{peer.host}:{peer.port}>')


MAX_MEDIA_GAP_S = 0.5  # RTP ticks every 20 ms; before the fix one such INVITE stalled the loop for 3.7-11 s


@pytest.mark.parametrize("hostile", ["call_id", "display_name"])
def test_60kb_header_does_not_stall_another_calls_media(tmp_path: Path, hostile: str) -> None:
    """21.1: an INVITE with a ~60 KB Call-ID or From display name, and its BYE, keep other calls' RTP on time."""
    server = _server_with_transfer_targets(tmp_path, '"sip:agent@127.0.0.1:*"')
    victim = Caller(server)
    attacker = RawPeer((server.host, server.port))
    attacker_rtp = _sink("127.0.0.1")
    clock = None
    try:
        assert victim.invite() == 200
        clock = _ArrivalClock(victim.rtp)
        clock.wait_packets(25, 10.0)  # voicebot streams to the victim every 20 ms
        huge = "a" * 60000
        if hostile == "call_id":
            attacker.call_id = huge + "@127.0.0.1"
            invite = _big_invite(server, attacker, attacker_rtp.getsockname()[1], "caller")
        else:
            invite = _big_invite(server, attacker, attacker_rtp.getsockname()[1], huge)
        assert 60000 < len(invite) < 65535
        sent_at = time.monotonic()
        attacker.send(invite)
        reply = attacker.wait_reply("INVITE", timeout=15)
        assert reply is not None and reply.status == 200, reply
        to_tag = (reply.header("to") or "").split("tag=")[1].split(";")[0]
        attacker.send(attacker.request("ACK", server.uri, to_tag=to_tag, cseq=1))
        attacker.send(attacker.request("BYE", server.uri, to_tag=to_tag))
        assert attacker.wait_reply("BYE", timeout=15) is not None
        ended = server.wait_for("call ended", timeout=20)[0]  # the big call is logged at BYE
        done_at = time.monotonic()
        clock.wait_packets(len(clock.arrivals) + 10, 5.0)  # media still flows after the big call is logged
        gap = clock.largest_gap(sent_at, done_at)
        assert gap < MAX_MEDIA_GAP_S, f"the victim's media stopped for {gap:.2f}s"
        logged = ended["call_id"] if hostile == "call_id" else ended["from"]
        assert len(logged) < 2200 and "more chars]" in logged, logged[:100]
        assert victim.bye() == 200
    finally:
        if clock is not None:
            clock.stop()
        victim.close()
        attacker.close()
        attacker_rtp.close()
        stop_server(server)
