"""RFC 4028 session timers against sipp callers: 422 below Min-SE, the caller's refreshes keep a call up, a caller
that stops refreshing is hung up with BYE, and voicebot refreshes with UPDATE or re-INVITE when it is the refresher.
The test config lowers Min-SE to 2 s so a session interval of 6 s keeps each call under 10 s."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.support import (SCENARIOS, ServerProcess, free_media_port, free_udp_port, launch_server,
                                       run_sipp, stop_server, write_config)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    config = tmp_path / "voicebot.yaml"
    write_config(config, listen="session_timers: {min_se_s: 2, expires_s: 6}")
    # the keypad demo must not hang up on its own while the session timer is what is tested
    config.write_text(config.read_text().replace("digit_timeout_s: 3", "digit_timeout_s: 60"))
    running = launch_server(config, tmp_path)
    yield running
    stop_server(running)


def _sipp(server: ServerProcess, tmp_path: Path, scenario: str) -> None:
    args = [f"{server.host}:{server.port}", "-sf", str(SCENARIOS / scenario), "-m", "1", "-i", "127.0.0.1",
            "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_media_port())]
    result = run_sipp(args, tmp_path, timeout=30)
    assert result.returncode == 0, result.stderr


def test_422_then_a_silent_caller_is_hung_up_with_bye(server: ServerProcess, tmp_path: Path) -> None:
    _sipp(server, tmp_path, "session_timer_expiry.xml")  # it passes only once our BYE arrived
    ended = server.wait_for_match("call ended", end_reason="session timer expired")
    assert 3.0 < ended["duration_s"] < 6.0  # 6 s interval, BYE at 6 - 6/3 = 4 s
    assert server.records("session timer expired")


def test_refreshes_from_the_caller_keep_the_call_up(server: ServerProcess, tmp_path: Path) -> None:
    _sipp(server, tmp_path, "session_timer_peer_refreshes.xml")
    ended = server.wait_for_match("call ended", end_reason="remote hangup")
    assert ended["duration_s"] > 6.0  # well past the 4 s a silent caller gets
    assert len(server.records("session refreshed by peer")) == 3


def test_voicebot_refreshes_with_update(server: ServerProcess, tmp_path: Path) -> None:
    _sipp(server, tmp_path, "session_timer_update_refresh.xml")
    server.wait_for_match("call ended", end_reason="remote hangup")
    sent = server.records("session refresh sent")
    assert [(r["method"], r["status"]) for r in sent] == [("UPDATE", 200), ("UPDATE", 200)]


def test_voicebot_refreshes_with_reinvite_when_update_is_not_allowed(server: ServerProcess, tmp_path: Path) -> None:
    _sipp(server, tmp_path, "session_timer_reinvite_refresh.xml")
    server.wait_for_match("call ended", end_reason="remote hangup")
    sent = server.records("session refresh sent")
    assert [(r["method"], r["status"]) for r in sent] == [("INVITE", 200)]
