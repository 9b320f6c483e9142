"""The exit watchdog ends a process whose shutdown is held by a thread that never finishes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from voicebot.exitwatch import OVERRAN_EXIT_CODE, start_exit_watchdog

REPO = Path(__file__).resolve().parents[1]
STUCK = """
import threading
from voicebot.exitwatch import start_exit_watchdog
threading.Thread(target=threading.Event().wait, name="stuck-join", daemon=False).start()
start_exit_watchdog(1.0)
print("main done", flush=True)
"""  # the interpreter's exit joins the non-daemon thread forever


def test_stuck_exit_is_ended_at_the_deadline_with_a_message() -> None:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", STUCK], cwd=REPO, capture_output=True, text=True, timeout=30)
    took = time.monotonic() - started
    assert proc.returncode == OVERRAN_EXIT_CODE and proc.stdout.strip() == "main done"
    assert "shutdown overran its 1 s bound" in proc.stderr and "stuck-join" in proc.stderr, proc.stderr
    assert took < 10


def test_deadline_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        start_exit_watchdog(0)
