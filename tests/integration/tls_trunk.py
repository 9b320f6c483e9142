"""A `voicebot serve` node whose trunk `edge` requires mutual TLS with the certificate name :data:`EDGE` (from
127.0.0.1), for the tests of how the node judges the transport and certificate a trunk's request came with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.certs import TestCa
from tests.integration.support import ServerProcess, start_server, stop_server

EDGE = "edge.voicebot.test"


@contextmanager
def tls_trunk_node(tmp_path: Path) -> Iterator[tuple[ServerProcess, TestCa]]:
    """The node (UDP and TLS, client certificates required) and the test CA that signed its certificate."""
    ca = TestCa(tmp_path / "pki")
    mine = ca.issue("node", ["localhost", "127.0.0.1"])
    listen = (f"transports: [udp, tls], tls_port: 0, tls: {{cert_file: {mine.cert}, key_file: {mine.key}, "
              f"ca_file: {ca.pem.cert}, client_auth: required}}")
    trunk = ('trunks:\n  - {name: edge, registrar: "sip:127.0.0.1", register: false, allow_from: [127.0.0.1/32], '
             f'tls_names: [{EDGE}]}}\n')
    (tmp_path / "node").mkdir()
    server = start_server(tmp_path / "node", trunk, listen=listen)
    try:
        yield server, ca
    finally:
        stop_server(server)
