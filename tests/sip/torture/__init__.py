"""The 49 RFC 4475 SIP torture messages, vendored with the tests (see README.md here for origin and licence)."""

from __future__ import annotations

from pathlib import Path

TORTURE_DIR: Path = Path(__file__).resolve().parent
"""Directory of the ``*.dat`` messages, one per file, CRLF line endings as published."""


def torture_files() -> list[Path]:
    """Every vendored message file, sorted by name."""
    return sorted(TORTURE_DIR.glob("*.dat"))
