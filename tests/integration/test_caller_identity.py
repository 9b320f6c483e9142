"""Caller identity end to end: sipp as a carrier sends P-Asserted-Identity, Privacy and Diversion; voicebot
believes the PAI only from the configured trunk's source and keeps a private number out of logs and records."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from tests.certs import TestCa
from tests.integration.rawsip import RawPeer, sdp_offer
from tests.integration.support import (SCENARIOS, ServerProcess, free_media_port, free_udp_port, run_sipp,
                                       start_server, stop_server)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

TRUNK = """trunks:
  - {name: carrier, registrar: "sip:127.0.0.1", register: false, allow_from: [127.0.0.1/32]}
"""
ASSERTED = "+15557654321"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    running = start_server(tmp_path, TRUNK)
    yield running
    stop_server(running)


def _call(server: ServerProcess, tmp_path: Path, source: str, privacy: str) -> None:
    args = [f"{server.host}:{server.port}", "-sf", str(SCENARIOS / "asserted_identity.xml"), "-m", "1",
            "-i", source, "-p", str(free_udp_port(source)), "-mi", source, "-mp", str(free_media_port(source)),
            "-key", "pai", ASSERTED, "-key", "privacy", privacy, "-key", "diverted", "2002"]
    result = run_sipp(args, tmp_path, timeout=30)
    assert result.returncode == 0, result.stderr


def _callers(tmp_path: Path) -> list[str]:
    with sqlite3.connect(str(tmp_path / "records" / "calls.sqlite3")) as reader:
        return [row[0] for row in reader.execute("SELECT caller FROM calls")]


def test_asserted_identity_from_the_trunk_is_the_caller(server: ServerProcess, tmp_path: Path) -> None:
    _call(server, tmp_path, "127.0.0.1", "none")
    offered = server.wait_for("call offered")[0]
    assert (offered["caller"], offered["identity"]) == ("[PHONE]", "pai")  # the log redacts phone numbers anyway
    assert offered["redirection"]["original_called"] == "2002"  # an extension: not redacted
    assert offered["redirection"]["reason"] == "user-busy"
    server.wait_for("call ended")
    assert _callers(tmp_path) == [ASSERTED]


def test_asserted_identity_from_an_untrusted_source_is_ignored(server: ServerProcess, tmp_path: Path) -> None:
    _call(server, tmp_path, "127.0.0.2", "none")  # inside the ACL, but not the trunk's allow_from
    offered = server.wait_for("call offered")[0]
    assert (offered["caller"], offered["identity"]) == ("5550000", "from")
    server.wait_for("call ended")
    assert _callers(tmp_path) == ["5550000"]


def test_privacy_id_keeps_the_number_out_of_logs_and_records(server: ServerProcess, tmp_path: Path) -> None:
    _call(server, tmp_path, "127.0.0.1", "id")
    offered = server.wait_for("call offered")[0]
    assert (offered["caller"], offered["identity"]) == ("anonymous", "pai")
    server.wait_for("call ended")
    assert _callers(tmp_path) == ["anonymous"]
    assert not [line for line in server.lines if ASSERTED in line]
    assert ASSERTED.encode() not in (tmp_path / "records" / "calls.sqlite3").read_bytes()


def test_asserted_identity_is_ignored_when_the_trunk_refuses_the_call(tmp_path: Path) -> None:
    """A trunk with tls_names takes calls over mutual TLS only: a UDP INVITE from its address is refused, and the
    P-Asserted-Identity it carried is not believed (the call offered line shows the From)."""
    ca = TestCa(tmp_path / "pki")
    mine = ca.issue("node", ["localhost", "127.0.0.1"])
    listen = (f"transports: [udp, tls], tls_port: 0, tls: {{cert_file: {mine.cert}, key_file: {mine.key}, "
              f"ca_file: {ca.pem.cert}, client_auth: required}}")
    trunk = ('trunks:\n  - {name: edge, registrar: "sip:127.0.0.1", register: false, allow_from: [127.0.0.1/32], '
             'tls_names: [edge.voicebot.test]}\n')
    (tmp_path / "node").mkdir()
    server = start_server(tmp_path / "node", trunk, listen=listen)
    peer = RawPeer((server.host, server.port))
    try:
        peer.send(peer.request("INVITE", server.uri, body=sdp_offer("127.0.0.1", free_media_port("127.0.0.1")),
                               content_type="application/sdp",
                               extra=f"P-Asserted-Identity: <sip:{ASSERTED}@127.0.0.1>\r\n"))
        reply = peer.wait_reply("INVITE")
        offered = server.wait_for_match("call offered", call_id=peer.call_id)
    finally:
        peer.close()
        stop_server(server)
    assert reply is not None and reply.status == 403
    assert offered["identity"] == "from", offered
