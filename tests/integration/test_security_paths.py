"""Attacks on a running `voicebot serve` over real SIP/RTP on loopback: transfer allowlist bypass, event-loop stalls."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

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
