"""A sipp UAS standing in for one carrier proxy (tests/integration/sipp/trunk_proxy*.xml)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.integration.support import SCENARIOS, free_media_port, free_udp_port, require_tool


class Proxy:
    """A sipp UAS playing one carrier proxy on a fixed loopback port (restartable on the same port)."""

    def __init__(self, scenario: str, cwd: Path, port: int | None = None) -> None:
        self.scenario = scenario
        self.port = port or free_udp_port()
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"sip:127.0.0.1:{self.port}"

    def start(self) -> None:
        require_tool("sipp")
        self.proc = subprocess.Popen(
            ["sipp", "-sf", str(SCENARIOS / self.scenario), "-i", "127.0.0.1", "-p", str(self.port), "-mi",
             "127.0.0.1", "-mp", str(free_media_port()), "-nostdin", "-timeout", "80s"],
            cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
