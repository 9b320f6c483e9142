"""The browser agent's side of the Chromium tests: the agents and queues a served browser agent needs, and signing
in on the agent desktop page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from .test_call_page_browser import click, wait_for

BROWSER_AGENT = """  - id: a1
    name: Browser Agent
    browser: true
    skills: {billing: 5}
    languages: [en-US]
    wrap_up_s: 60
"""


def browser_agent_queues(tmp_path: Path, hold_audio: Path | None = None, *, other_agents: str = "",
                         queue_options: str = "") -> str:
    """Write agents.yaml (the browser agent a1, then ``other_agents``) and queues.yaml (the queue ``support``, with
    ``queue_options``) into ``tmp_path``; the server config's ``queues:`` section on them: ringing for 30 s, callers
    held with ``hold_audio`` (None: a second of silence, so nothing but the agent plays once bridged)."""
    if hold_audio is None:
        hold_audio = tmp_path / "silence.wav"
        soundfile.write(str(hold_audio), np.zeros(8000, np.int16), 8000)
    (tmp_path / "agents.yaml").write_text("agents:\n" + BROWSER_AGENT + other_agents)
    (tmp_path / "queues.yaml").write_text("queues:\n  - name: support\n    max_wait_s: 600\n" + queue_options)
    return (f"queues: {{agents_file: {tmp_path / 'agents.yaml'}, queues_file: {tmp_path / 'queues.yaml'}, "
            f"ring_timeout_s: 30,\n          hold_audio: {hold_audio}}}\n")


def sign_in_agent(driver: Any, api_port: int, token: str, *, available: bool = True) -> None:
    """Open the agent desktop, sign in as a1 with ``token`` and (``available``) go available."""
    driver.get(f"http://127.0.0.1:{api_port}/agent")
    driver.find_element("id", "token").send_keys(token)
    click(driver, "#login-form button")
    wait_for(driver, "document.getElementById('agent-name').textContent.includes('(a1)')", 20, "sign-in")
    if available:
        go_available(driver)


def go_available(driver: Any) -> None:
    click(driver, "#go-available")
    wait_for(driver, "document.getElementById('state').textContent === 'available'", 10, "available")
