"""Outbound transport choice of the user agent against real peers: a large INVITE leaves over TCP for a sipp UAS
that listens on TCP only (RFC 3261 §18.1.1), and TLS to `openssl s_server` verifies the server's certificate
and host name and presents ours (mutual TLS)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.certs import Pem, TestCa
from tests.integration.baresip_support import free_tcp_port
from tests.integration.support import SCENARIOS, free_media_port, require_tool
from voicebot.sip.call import CallState
from voicebot.sip.message import SipRequest
from voicebot.sip.registration import Registration
from voicebot.sip.tls import TlsSettings
from voicebot.sip.transaction import Timers, TransactionTimeout
from voicebot.sip.ua import TransportOptions, UserAgent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SDP = ("v=0\r\no=vb 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0 8 9 18 3 4 97 98 99 100 102 101\r\n"
       + "".join(f"a=rtpmap:{pt} codec{pt}/8000\r\n" for pt in (0, 8, 9, 18, 3, 4, 97, 98, 99, 100, 102))
       + "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n").encode()


def test_invite_over_1300_bytes_goes_over_tcp(tmp_path: Path) -> None:
    require_tool("sipp")
    port = free_tcp_port()
    uas = subprocess.Popen(["sipp", "-sn", "uas", "-t", "t1", "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1",
                            "-mp", str(free_media_port()), "-m", "1", "-nostdin", "-timeout", "30s", "-timeout_error", "-trace_err",
                            "-error_file", str(tmp_path / "uas_errors.log")],
                           cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    async def call() -> tuple[str, int]:
        ua = UserAgent("127.0.0.1", 0, timers=Timers(t1=0.1), transports=TransportOptions(("udp", "tcp")))
        await ua.start()
        try:
            for _ in range(200):  # sipp needs a moment to listen (a probe connection would count as a failure)
                if tcp_listening(port):
                    break
                await asyncio.sleep(0.05)
            leg = await ua.invite(f"sip:uas@127.0.0.1:{port}", sdp=SDP,
                                  headers=[("X-Carrier-Trace", "0123456789abcdef" * 40)])
            assert leg.state is CallState.CONFIRMED
            assert len(leg.invite.serialize()) > 1300
            await leg.hangup("done")
            # sipp's UAS lingers 4 s after the BYE and counts a connection closed meanwhile as a failed call
            returncode = await asyncio.get_running_loop().run_in_executor(None, uas.wait, 30)
            return leg.invite.headers.values("Via")[0], returncode
        finally:
            await ua.stop()

    via, returncode = asyncio.run(call())
    assert via.startswith("SIP/2.0/TCP ") and ";alias" in via
    assert returncode == 0, (tmp_path / "uas_errors.log").read_text() if (tmp_path / "uas_errors.log").exists() \
        else "sipp UAS failed"


def test_trunk_registers_over_tcp_with_a_tcp_contact(tmp_path: Path) -> None:
    """A registrar URI with ;transport=tcp: REGISTER (and its digest retry) over TCP, Contact asking for TCP."""
    require_tool("sipp")
    port = free_tcp_port()
    messages = tmp_path / "messages.log"
    registrar = subprocess.Popen(["sipp", "-sf", str(SCENARIOS / "uas_register_challenge.xml"), "-t", "t1",
                                  "-i", "127.0.0.1", "-p", str(port), "-m", "1", "-nostdin", "-timeout", "30s",
                                  "-timeout_error", "-trace_msg", "-message_file", str(messages)],
                                 cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)

    async def register() -> tuple[int, int, int]:
        ua = UserAgent("127.0.0.1", 0, timers=Timers(t1=0.1), transports=TransportOptions(("udp", "tcp")))
        await ua.start()
        try:
            while not tcp_listening(port):
                await asyncio.sleep(0.05)
            reg = Registration(ua, f"sip:127.0.0.1:{port};transport=tcp", "trunkuser", "s3cret-pw", expires=300)
            resp = await reg.register_once()
            returncode = await asyncio.get_running_loop().run_in_executor(None, registrar.wait, 30)
            return resp.status, returncode, ua.ports["tcp"]
        finally:
            await ua.stop()

    status, returncode, our_port = asyncio.run(register())
    assert status == 200 and returncode == 0
    received = messages.read_text()
    assert received.count("REGISTER sip:127.0.0.1") == 2 and "TCP message received" in received
    assert f"Contact: <sip:voicebot@127.0.0.1:{our_port};transport=tcp>" in received


def tcp_listening(port: int) -> bool:
    """Whether something listens on TCP ``port`` (from /proc/net/tcp, without connecting)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            return True
    return False


class SServer:
    """`openssl s_server` as a TLS peer: what it receives is collected from its stdout."""

    def __init__(self, pem: Pem, ca: TestCa, port: int) -> None:
        self.out: list[str] = []
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(pem.cert), "-key", str(pem.key),
             "-Verify", "1", "-CAfile", str(ca.pem.cert), "-naccept", "1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._accepting = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._accepting.wait(20), "openssl s_server did not start: " + "".join(self.out)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.out.append(line)
            if line.startswith("ACCEPT"):
                self._accepting.set()

    def text(self) -> str:
        return "".join(self.out)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def tls_ua(ca: TestCa, client: Pem) -> UserAgent:
    options = TransportOptions(("udp", "tls"), tls_port=0,
                               tls=TlsSettings(cert_file=str(client.cert), key_file=str(client.key),
                                               ca_file=str(ca.pem.cert)))
    return UserAgent("127.0.0.1", 0, timers=Timers(t1=0.05), transports=options)


def test_tls_out_verifies_the_server_and_presents_our_certificate(tmp_path: Path) -> None:
    require_tool("openssl")
    ca = TestCa(tmp_path / "pki")
    client = ca.issue("voicebot", ["voicebot.example.net"])
    peer = SServer(ca.issue("peer", ["127.0.0.1"]), ca, port := free_tcp_port())

    async def send() -> None:
        ua = tls_ua(ca, client)
        await ua.start()
        try:
            request = asyncio.ensure_future(ua.send_request(_options(ua, port)))
            deadline = time.monotonic() + 15
            while "OPTIONS sips:" not in peer.text() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # polling another process's output
            request.cancel()
        finally:
            await ua.stop()

    try:
        asyncio.run(send())
        text = peer.text()
        assert "OPTIONS sips:peer@127.0.0.1" in text, text
        assert "Via: SIP/2.0/TLS 127.0.0.1:" in text and ";alias" in text
        assert "transport=tls" in text  # our Contact asks for TLS back
        assert "CN = voicebot.example.net" in text and "verify return:1" in text  # mutual TLS: our certificate
    finally:
        peer.close()


def test_tls_out_refuses_a_server_whose_name_does_not_match(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    require_tool("openssl")
    ca = TestCa(tmp_path / "pki")
    client = ca.issue("voicebot", ["voicebot.example.net"])
    peer = SServer(ca.issue("impostor", ["other.example.net"]), ca, port := free_tcp_port())

    async def send() -> float:
        ua = tls_ua(ca, client)
        await ua.start()
        started = time.monotonic()
        try:
            with pytest.raises(TransactionTimeout, match="certificate verify failed"):
                await ua.send_request(_options(ua, port))
            return time.monotonic() - started
        finally:
            await ua.stop()

    try:
        with caplog.at_level(logging.WARNING, logger="voicebot.sip.stream"):
            elapsed = asyncio.run(send())
        assert elapsed < 64 * 0.05  # failed on the handshake, not by waiting out timer F
        failures = [r for r in caplog.records if r.getMessage() == "sip connection failed"]
        assert failures and "mismatch" in failures[0].fields["reason"], [r.__dict__ for r in failures]  # type: ignore[attr-defined]
        assert "OPTIONS" not in peer.text()
    finally:
        peer.close()


def _options(ua: UserAgent, port: int) -> SipRequest:
    req = SipRequest(method="OPTIONS", uri=f"sips:peer@127.0.0.1:{port}")
    for name, value in (("Max-Forwards", "70"), ("From", "<sip:voicebot@127.0.0.1>;tag=1"),
                        ("To", f"<sips:peer@127.0.0.1:{port}>"), ("Call-ID", "tls-out@test"), ("CSeq", "1 OPTIONS"),
                        ("Contact", f"<{ua.contact_for('tls')}>")):
        req.headers.add(name, value)
    return req
