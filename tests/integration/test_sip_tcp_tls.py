"""SIP over TCP and TLS against a running `voicebot serve`: sipp over TCP (Debian's sipp has no TLS), a Python
``ssl`` client speaking SIP over TLS, plaintext and untrusted certificates on the TLS port, connection limits,
idle timeouts and framing errors on a stream."""

from __future__ import annotations

import re
import secrets
import socket
import ssl
from pathlib import Path

import pytest

from tests.certs import Pem, TestCa
from tests.integration.support import (SCENARIOS, ServerProcess, free_media_port, free_udp_port, launch_server,
                                       run_sipp, start_server, stop_server, write_config)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestCa, Pem]:
    ca = TestCa(tmp_path_factory.mktemp("pki"))
    return ca, ca.issue("server", ["localhost", "127.0.0.1"])


def tls_listen(server_pem: Pem, tls_extra: str = "", extra: str = "") -> str:
    return (f"transports: [udp, tcp, tls], tls_port: 0, tls: {{cert_file: {server_pem.cert}, "
            f"key_file: {server_pem.key}{tls_extra}}}{extra}")


@pytest.fixture
def tcp_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = start_server(tmp_path, "log: {keyed_digits: shown}", listen="transports: [udp, tcp]")
    yield server
    stop_server(server)


# ---------------------------------------------------------------------------------------------- a SIP peer


class StreamPeer:
    """Hand-written SIP over one TCP or TLS connection, read back by Content-Length."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(10)
        self.buf = b""
        self.host, self.port = sock.getsockname()[:2]
        self.call_id = secrets.token_hex(8) + "@peer"
        self.tag = secrets.token_hex(4)

    def send(self, text: str, body: str = "") -> None:
        lines = [line.strip() for line in text.strip().splitlines()]
        head = "\r\n".join(lines) + f"\r\nContent-Length: {len(body.encode())}\r\n\r\n"
        self.sock.sendall(head.encode() + body.encode())

    def read_message(self) -> str:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        m = re.search(rb"^(?:Content-Length|l)\s*:\s*(\d+)", head, re.I | re.M)
        length = int(m.group(1)) if m else 0
        while len(rest) < length:
            self._fill()
            head, _, rest = self.buf.partition(b"\r\n\r\n")
        self.buf = rest[length:]
        return (head + b"\r\n\r\n" + rest[:length]).decode()

    def response(self, method: str, final: bool = True) -> str:
        while True:
            msg = self.read_message()
            if not msg.startswith("SIP/2.0 "):
                continue
            status = int(msg.split()[1])
            if f" {method}\r\n" in msg and (status >= 200 or not final):
                return msg

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def closed_by_server(self, timeout: float = 10.0) -> bool:
        """True once the server has closed the connection (EOF or reset), False if it stayed open."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def request(self, method: str, uri: str, transport: str, cseq: int = 1, to_tag: str = "",
                extra: str = "", body: str = "", sent_by: str | None = None, alias: bool = True) -> None:
        self.send(f"""
            {method} {uri} SIP/2.0
            Via: SIP/2.0/{transport} {sent_by or f"{self.host}:{self.port}"};branch=z9hG4bK{secrets.token_hex(6)}{";alias" if alias else ""}
            From: <sip:peer@{self.host}>;tag={self.tag}
            To: <{uri}>{';tag=' + to_tag if to_tag else ''}
            Call-ID: {self.call_id}
            CSeq: {cseq} {method}
            Contact: <sip:peer@{sent_by or f"{self.host}:{self.port}"};transport={transport.lower()}>
            Max-Forwards: 70
            {extra}
            """.replace("\n            \n", "\n"), body)


def header(msg: str, name: str) -> str:
    m = re.search(rf"^{name}\s*:\s*(.*)$", msg, re.I | re.M)
    assert m, f"no {name} in {msg}"
    return m.group(1).strip()


def tls_client(ca: TestCa, client: Pem | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.pem.cert))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


def connect_tls(server: ServerProcess, context: ssl.SSLContext, name: str = "localhost") -> StreamPeer:
    raw = socket.create_connection(("127.0.0.1", server.ports["tls"]), timeout=10)
    return StreamPeer(context.wrap_socket(raw, server_hostname=name))


def connect_tcp(server: ServerProcess) -> StreamPeer:
    return StreamPeer(socket.create_connection(("127.0.0.1", server.ports["tcp"]), timeout=10))


def sdp_for(media_port: int) -> str:
    return ("v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {media_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n")


# ---------------------------------------------------------------------------------------------- sipp over TCP


def test_full_call_with_media_and_dtmf_over_tcp(tcp_server: ServerProcess, tmp_path: Path) -> None:
    """sipp -t t1: INVITE/200/ACK over one TCP connection, G.711 speech and RFC 4733 digits as RTP, and
    voicebot's BYE back over the same connection (sipp -t t1 accepts nothing else)."""
    args = [f"127.0.0.1:{tcp_server.ports['tcp']}", "-t", "t1", "-sf", str(SCENARIOS / "dtmf_rfc4733.xml"),
            "-m", "1", "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_media_port())]
    result = run_sipp(args, tmp_path)
    assert result.returncode == 0, result.stderr
    ended = tcp_server.wait_for("call ended")[0]
    assert ended["digits"] == "123"
    assert ended["outcome"] == "completed"
    assert ended["rtp_received"] > 200


def test_long_invite_over_tcp_is_answered(tcp_server: ServerProcess, tmp_path: Path) -> None:
    messages = tmp_path / "messages.log"
    args = [f"127.0.0.1:{tcp_server.ports['tcp']}", "-t", "t1", "-sf", str(SCENARIOS / "long_invite.xml"),
            "-m", "1", "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_media_port()),
            "-trace_msg", "-message_file", str(messages)]
    result = run_sipp(args, tmp_path)
    assert result.returncode == 0, result.stderr
    sizes = [int(n) for n in re.findall(r"TCP message sent \((\d+) bytes\):\s+INVITE", messages.read_text())]
    assert sizes and sizes[0] > 1300, sizes
    ended = tcp_server.wait_for("call ended")[0]
    assert ended["end_reason"] == "remote hangup"


# ---------------------------------------------------------------------------------------------- TLS


def test_call_over_tls_with_keepalive_and_media(tmp_path: Path, pki: tuple[TestCa, Pem]) -> None:
    ca, server_pem = pki
    server = start_server(tmp_path, listen=tls_listen(server_pem))
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        media.bind(("127.0.0.1", 0))
        media.settimeout(10)
        peer = connect_tls(server, tls_client(ca))
        assert peer.sock.version() in ("TLSv1.2", "TLSv1.3")
        peer.sock.sendall(b"\r\n\r\n")  # RFC 5626 ping ...
        assert peer.sock.recv(2) == b"\r\n"  # ... single-CRLF pong
        uri = f"sip:1000@localhost:{server.ports['tls']};transport=tls"
        peer.request("INVITE", uri, "TLS", extra="Content-Type: application/sdp",
                     body=sdp_for(media.getsockname()[1]))
        ok = peer.response("INVITE")
        assert ok.startswith("SIP/2.0 200"), ok
        assert ";transport=tls" in header(ok, "Contact") and f":{server.ports['tls']};" in header(ok, "Contact")
        to_tag = header(ok, "To").split("tag=")[1]
        peer.request("ACK", uri, "TLS", to_tag=to_tag)
        packets = [media.recvfrom(2048)[0] for _ in range(25)]  # the greeting, as RTP
        assert all(p[0] >> 6 == 2 for p in packets)
        peer.request("BYE", uri, "TLS", cseq=2, to_tag=to_tag)
        assert peer.response("BYE").startswith("SIP/2.0 200")
        ended = server.wait_for("call ended")[0]
        assert ended["end_reason"] == "remote hangup"
        peer.sock.unwrap()  # our close_notify; returns once the server answered with its own (times out if not)
        server.wait_for_match("sip connection closed", peer=f"127.0.0.1:{peer.port}", transport="tls")
    finally:
        media.close()
        stop_server(server)


def test_plaintext_and_untrusted_certificates_on_the_tls_port(tmp_path: Path, pki: tuple[TestCa, Pem]) -> None:
    ca, server_pem = pki
    trunk = ca.issue("trunk", ["trunk.example.net"])
    stranger_ca = TestCa(tmp_path / "stranger", "stranger CA")
    stranger = stranger_ca.issue("stranger", ["trunk.example.net"])
    server = start_server(tmp_path, listen=tls_listen(server_pem, f", ca_file: {ca.pem.cert}, client_auth: required"))
    try:
        # 1. plain SIP bytes on the TLS port: the server drops the connection and says why
        plain = StreamPeer(socket.create_connection(("127.0.0.1", server.ports["tls"]), timeout=10))
        plain.request("OPTIONS", "sip:1000@127.0.0.1", "TCP")
        assert plain.closed_by_server()
        failure = server.wait_for("tls handshake failed")[0]
        assert failure["src"].startswith("127.0.0.1:") and failure["reason"]
        # 2. a client certificate from a CA the server does not trust
        with pytest.raises((ssl.SSLError, ConnectionError)):
            untrusted = connect_tls(server, tls_client(ca, stranger))
            untrusted.request("OPTIONS", "sip:1000@127.0.0.1", "TLS")
            untrusted.response("OPTIONS")
        reasons = [r["reason"] for r in server.wait_for("tls handshake failed", count=2)]
        assert any("CERTIFICATE_VERIFY_FAILED" in r or "certificate verify failed" in r for r in reasons), reasons
        # 3. the trunk with a certificate from the configured CA is served, and named in the log
        good = connect_tls(server, tls_client(ca, trunk))
        good.request("OPTIONS", f"sip:1000@127.0.0.1:{server.ports['tls']}", "TLS")
        assert good.response("OPTIONS").startswith("SIP/2.0 200")
        assert server.wait_for("tls peer certificate")[0]["subject"] == "trunk.example.net"
        assert server.proc.poll() is None
    finally:
        stop_server(server)


# ---------------------------------------------------------------------------------------------- limits


def test_per_source_connection_limit(tmp_path: Path) -> None:
    server = start_server(tmp_path, listen="transports: [udp, tcp], stream: {max_connections_per_source: 2}")
    try:
        first, second = connect_tcp(server), connect_tcp(server)
        for peer in (first, second):
            peer.request("OPTIONS", "sip:1000@127.0.0.1", "TCP")
            assert peer.response("OPTIONS").startswith("SIP/2.0 200")
        third = connect_tcp(server)
        assert third.closed_by_server()
        refused = server.wait_for("sip connection refused")[0]
        assert refused["reason"] == "per-source connection limit"
        first.sock.close()
        server.wait_for_match("sip connection closed", peer=f"127.0.0.1:{first.port}")
        fourth = connect_tcp(server)  # a slot is free again
        fourth.request("OPTIONS", "sip:1000@127.0.0.1", "TCP")
        assert fourth.response("OPTIONS").startswith("SIP/2.0 200")
    finally:
        stop_server(server)


def test_idle_connection_is_closed_and_framing_errors_close_with_400(tmp_path: Path) -> None:
    server = start_server(tmp_path, listen="transports: [udp, tcp], stream: {idle_timeout_s: 1}")
    try:
        idle = connect_tcp(server)
        idle.request("OPTIONS", "sip:1000@127.0.0.1", "TCP")
        assert idle.response("OPTIONS").startswith("SIP/2.0 200")
        assert idle.closed_by_server(timeout=15)
        closed = server.wait_for("idle sip connection closed")[0]
        assert closed["peer"] == f"127.0.0.1:{idle.port}"

        broken = connect_tcp(server)
        broken.sock.sendall(b"OPTIONS sip:1000@127.0.0.1 SIP/2.0\r\n"
                            b"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKnolength\r\nFrom: <sip:a@h>;tag=1\r\n"
                            b"To: <sip:b@h>\r\nCall-ID: nolength@h\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n")
        reply = broken.read_message()
        assert reply.startswith("SIP/2.0 400") and "Content-Length required" in reply
        assert broken.closed_by_server()
    finally:
        stop_server(server)


@pytest.mark.parametrize("alias", [True, False])
def test_in_dialog_request_after_the_callers_connection_closed(tmp_path: Path, tcp_server: ServerProcess,
                                                               alias: bool) -> None:
    """The caller's first connection closes mid-call. Its next request comes on a new connection: with ``;alias``
    in that request's Via (RFC 5923) voicebot's BYE reuses the new connection; without it voicebot opens a
    connection to the caller's Contact (its listening port)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(15)
    sent_by = f"127.0.0.1:{listener.getsockname()[1]}"
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind(("127.0.0.1", 0))
    try:
        first = connect_tcp(tcp_server)
        uri = f"sip:1000@127.0.0.1:{tcp_server.ports['tcp']};transport=tcp"
        first.request("INVITE", uri, "TCP", sent_by=sent_by, alias=False, extra="Content-Type: application/sdp",
                      body=sdp_for(media.getsockname()[1]))
        ok = first.response("INVITE")
        assert ok.startswith("SIP/2.0 200"), ok
        to_tag = header(ok, "To").split("tag=")[1]
        first.request("ACK", uri, "TCP", sent_by=sent_by, alias=False, to_tag=to_tag)
        first.sock.close()
        tcp_server.wait_for_match("sip connection closed", peer=f"127.0.0.1:{first.port}")

        second = connect_tcp(tcp_server)
        second.call_id, second.tag = first.call_id, first.tag
        for cseq, key in enumerate("45#", start=2):
            second.request("INFO", uri, "TCP", cseq=cseq, to_tag=to_tag, sent_by=sent_by, alias=alias,
                           extra="Content-Type: application/dtmf-relay", body=f"Signal={key}\r\nDuration=160\r\n")
            assert second.response("INFO").startswith("SIP/2.0 200")
        back = second if alias else StreamPeer(listener.accept()[0])
        bye = back.read_message()
        assert bye.startswith("BYE sip:peer@" + sent_by), bye
        assert header(bye, "Via").startswith("SIP/2.0/TCP ")
        back.send("SIP/2.0 200 OK\n" + "\n".join(f"{name}: {header(bye, name)}"
                                                  for name in ("Via", "From", "To", "Call-ID", "CSeq")))
        ended = tcp_server.wait_for("call ended")[0]
        assert ended["digits"] == "45"
    finally:
        listener.close()
        media.close()


def test_tcp_and_tls_on_ipv6_loopback(tmp_path: Path, pki: tuple[TestCa, Pem]) -> None:
    ca, _ = pki
    pem = ca.issue("v6", ["::1"])
    config = tmp_path / "voicebot.yaml"
    write_config(config, listen=tls_listen(pem))
    config.write_text(config.read_text().replace("host: 127.0.0.1, port: 0", "host: '::1', port: 0"))
    server = launch_server(config, tmp_path)
    try:
        assert server.proc.poll() is None and set(server.ports) == {"udp", "tcp", "tls"}
        tcp = StreamPeer(socket.create_connection(("::1", server.ports["tcp"]), timeout=10))
        tcp.host = "[::1]"
        tcp.request("OPTIONS", f"sip:1000@[::1]:{server.ports['tcp']};transport=tcp", "TCP")
        ok = tcp.response("OPTIONS")
        assert ok.startswith("SIP/2.0 200") and f"<sip:voicebot@[::1]:{server.ports['tcp']};transport=tcp>" in ok
        raw = socket.create_connection(("::1", server.ports["tls"]), timeout=10)
        tls = StreamPeer(tls_client(ca).wrap_socket(raw, server_hostname="::1"))
        tls.host = "[::1]"
        tls.request("OPTIONS", f"sips:1000@[::1]:{server.ports['tls']}", "TLS")
        ok = tls.response("OPTIONS")
        assert ok.startswith("SIP/2.0 200") and f"<sip:voicebot@[::1]:{server.ports['tls']};transport=tls>" in ok
    finally:
        stop_server(server)
