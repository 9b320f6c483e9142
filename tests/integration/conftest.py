"""Integration fixtures: a real `voicebot serve` process on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.support import ServerProcess, start_server, stop_server


@pytest.fixture
def voicebot_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    server: ServerProcess = start_server(tmp_path, "log: {keyed_digits: shown}")  # DTMF tests read the digits back
    yield server
    stop_server(server)
