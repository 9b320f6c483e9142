"""Lint as part of the suite: `ruff check` with the repository's configuration (pyproject.toml [tool.ruff]) passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_check_passes() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "No module named ruff" not in proc.stderr, "ruff is a test dependency: run scripts/setup.sh --test"
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
