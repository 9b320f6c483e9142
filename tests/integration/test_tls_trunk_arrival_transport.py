"""A trunk's tls_names judge the transport a request really arrived on, never its source address.

A UDP datagram from the same (ip, port) as the trunk's open mutual-TLS connection (another protocol's port space)
must not be taken for a TLS request nor inherit that connection's certificate names: 403. (Issue 20 review: the
transport used to be looked up by address in the TCP/TLS connection table.) A Python TLS client, no Kamailio.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.certs import TestCa
from tests.integration.rawsip import RawPeer, sdp_offer
from tests.integration.support import ServerProcess, start_server, stop_server
from tests.integration.tls_trunk import EDGE, tls_trunk_node
from tests.integration.test_sip_tcp_tls import StreamPeer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[ServerProcess, TestCa]]:
    with tls_trunk_node(tmp_path) as started:
        yield started


def test_udp_invite_from_the_address_of_a_trunk_tls_connection_is_refused(node: tuple[ServerProcess, TestCa]) -> None:
    server, ca = node
    edge = ca.issue("edge", [EDGE, "127.0.0.1"])
    context = ssl.create_default_context(cafile=str(ca.pem.cert))
    context.load_cert_chain(str(edge.cert), str(edge.key))
    with socket.create_connection(("127.0.0.1", server.ports["tls"]), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        host, port = tls.getsockname()[:2]
        tls.sendall((f"OPTIONS sip:{server.host}:{server.ports['tls']};transport=tls SIP/2.0\r\n"
                     f"Via: SIP/2.0/TLS {host}:{port};branch=z9hG4bKcheck{port}\r\n"
                     f"From: <sip:check@{host}>;tag=check\r\nTo: <sip:{server.host}>\r\n"
                     f"Call-ID: check-{port}@{host}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                     "Content-Length: 0\r\n\r\n").encode())
        assert tls.recv(65536).startswith(b"SIP/2.0 200")  # the trunk's mutual-TLS connection is up
        # Someone else sends a plain UDP INVITE from the same ip:port (another protocol's port space).
        peer = RawPeer((server.host, server.port))
        peer.sock.close()
        peer.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.sock.bind(("127.0.0.1", port))
        peer.host, peer.port = "127.0.0.1", port
        try:
            peer.send(peer.request("INVITE", server.uri, body=sdp_offer("127.0.0.1", 40000),
                                   content_type="application/sdp",
                                   extra="P-Asserted-Identity: <sip:+15550001111@127.0.0.1>\r\n"))
            offered = server.wait_for_match("call offered", call_id=peer.call_id)
        finally:
            peer.close()
    print({k: offered.get(k) for k in ("transport", "trunk", "tls_peer", "identity")})
    assert offered["transport"] == "udp", offered  # it came over UDP
    assert server.wait_for("call rejected: trunk requires mutual TLS", timeout=5), offered


def test_a_trunk_may_send_its_invite_on_the_connection_the_node_opened(tmp_path: Path) -> None:
    """The node opens the TLS connection (its OPTIONS health check to the trunk's proxy) and verifies the trunk's
    server certificate; an INVITE the trunk sends back on that connection proves those names: accepted, not 403."""
    ca = TestCa(tmp_path / "pki")
    mine, edge = ca.issue("node", ["localhost", "127.0.0.1"]), ca.issue("edge", [EDGE, "127.0.0.1"])
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listen = (f"transports: [udp, tls], tls_port: 0, tls: {{cert_file: {mine.cert}, key_file: {mine.key}, "
              f"ca_file: {ca.pem.cert}, client_auth: required}}")
    trunk = (f'trunks:\n  - {{name: edge, registrar: "sip:127.0.0.1", register: false, allow_from: [127.0.0.1/32], '
             f'tls_names: [{EDGE}], proxies: ["sip:127.0.0.1:{port};transport=tls"], '
             'health: {interval_s: 1, timeout_s: 0.5}}\n')
    (tmp_path / "node").mkdir()
    server = start_server(tmp_path / "node", trunk, listen=listen)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.pem.cert))
    context.load_cert_chain(str(edge.cert), str(edge.key))
    try:
        listener.settimeout(15)
        raw, _ = listener.accept()  # the node's health check connects
        with context.wrap_socket(raw, server_side=True) as tls:
            peer = StreamPeer(tls)
            options = peer.read_message()
            assert options.startswith("OPTIONS "), options
            peer.send("SIP/2.0 200 OK\r\n" + "\r\n".join(
                line for line in options.split("\r\n")[1:]
                if line.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")))
            peer.request("INVITE", f"sip:1000@127.0.0.1:{server.ports['tls']};transport=tls", "TLS",
                         sent_by=f"127.0.0.1:{port}", alias=False, extra="Content-Type: application/sdp",
                         body=sdp_offer("127.0.0.1", 40000))
            answer = peer.response("INVITE", final=False)
            while answer.split()[1] == "100":
                answer = peer.response("INVITE", final=False)
            offered = server.wait_for_match("call offered", call_id=peer.call_id)
    finally:
        listener.close()
        stop_server(server)
    assert (offered["transport"], offered["tls_peer"]) == ("tls", EDGE), offered
    assert answer.split()[1] != "403", answer
    assert not server.records("call rejected: trunk requires mutual TLS")
