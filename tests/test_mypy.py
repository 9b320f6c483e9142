"""Types as part of the suite: mypy, with the repository's configuration (pyproject.toml [tool.mypy]: strict for
voicebot.sip, .rtp, .dialplan, .queues, .knowledge, .channels and .handoff, the call modules and the live quality
checks), reports no errors on those packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STRICT_PACKAGES = ["voicebot/sip", "voicebot/rtp", "voicebot/dialplan", "voicebot/queues", "voicebot/knowledge",
                   "voicebot/channels", "voicebot/handoff", "voicebot/calls/events.py", "voicebot/calls/lifecycle.py",
                   "voicebot/calls/legs.py", "voicebot/calls/quality_watch.py",
                   "voicebot/compliance/quality.py", "voicebot/compliance/timing.py",
                   "voicebot/compliance/alerts.py"]


def test_mypy_strict_packages_pass() -> None:
    command = [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", "/dev/null", *STRICT_PACKAGES]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert "No module named mypy" not in proc.stderr, "mypy is a test dependency: run scripts/setup.sh --test"
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "Success: no issues found" in proc.stdout, proc.stdout[-2000:]
