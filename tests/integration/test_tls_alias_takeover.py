"""RFC 5923 ``;alias`` never lets one connection take over an address another live connection holds.

A second certificate holder (here: another client certificate from the same CA, e.g. a phone's) claims the trunk's
ip:port with ``;alias``; what the node sends to the trunk (here: the answer to the trunk's next OPTIONS) must still
go on the trunk's own connection. (Issue 20 review; RFC 5923 §10.2 also checks the alias host against the peer.)
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.certs import TestCa
from tests.integration.support import ServerProcess
from tests.integration.tls_trunk import EDGE, tls_trunk_node

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[ServerProcess, TestCa]]:
    with tls_trunk_node(tmp_path) as started:
        yield started


def options(server: ServerProcess, sock: ssl.SSLSocket, sent_by: tuple[str, int], tag: str, alias: bool) -> None:
    host, port = sent_by
    sock.sendall((f"OPTIONS sip:{server.host}:{server.ports['tls']};transport=tls SIP/2.0\r\n"
                  f"Via: SIP/2.0/TLS {host}:{port};branch=z9hG4bK{tag}{';alias' if alias else ''}\r\n"
                  f"From: <sip:check@{host}>;tag={tag}\r\nTo: <sip:{server.host}>\r\n"
                  f"Call-ID: {tag}@{host}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                  "Content-Length: 0\r\n\r\n").encode())


def test_another_certificate_cannot_take_over_the_trunks_connection(node: tuple[ServerProcess, TestCa]) -> None:
    server, ca = node
    edge, phone = ca.issue("edge", [EDGE]), ca.issue("phone", ["phone.voicebot.test"])

    def connect(pem) -> ssl.SSLSocket:  # type: ignore[no-untyped-def]
        context = ssl.create_default_context(cafile=str(ca.pem.cert))
        context.load_cert_chain(str(pem.cert), str(pem.key))
        raw = socket.create_connection(("127.0.0.1", server.ports["tls"]), timeout=5)
        return context.wrap_socket(raw, server_hostname="localhost")

    with connect(edge) as trunk, connect(phone) as intruder:
        trunk_addr = trunk.getsockname()[:2]
        options(server, trunk, trunk_addr, "t1", alias=False)
        assert trunk.recv(65536).startswith(b"SIP/2.0 200")
        options(server, intruder, trunk_addr, "i1", alias=True)  # "requests for the trunk's address: use me"
        intruder.recv(65536)  # its own answer
        options(server, trunk, trunk_addr, "t2", alias=False)
        intruder.settimeout(2)
        try:
            stolen = intruder.recv(65536)
        except TimeoutError:
            stolen = b""
        assert b"t2@" not in stolen, stolen.decode(errors="replace")[:300]
