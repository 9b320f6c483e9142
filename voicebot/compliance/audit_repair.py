"""Recover an audit log whose last line was torn (a crash or full disk in the middle of a write).

    torn = quarantine_torn_tail(Path("var/audit/audit.jsonl"))   # None when the tail is sound
    voicebot audit verify [PATH]        # exit 0 when the whole chain (rotated files too) holds
    voicebot audit repair [PATH]        # quarantine a torn tail; the next start (or this command) marks the gap

Only the *tail* is repaired: the bytes after the last complete, hash-valid line move to a side file
``<name>.torn-<UTC stamp>`` (0600) and the log is cut back to that line. The chain then continues with an
``audit.gap`` entry naming the side file, its size and sha256, so the loss is on the record and `verify` passes.
Damage anywhere else is tampering or corruption, not a torn write: it is reported, never "repaired".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TornTail", "quarantine_torn_tail", "register"]

DEFAULT_AUDIT_LOG = "var/audit/audit.jsonl"
_TAIL_BYTES = 1 << 20


@dataclass(frozen=True)
class TornTail:
    side_file: Path
    size: int
    sha256: str
    kept_lines: int  # complete lines kept in the log (of the scanned tail)


def _parses(line: bytes) -> bool:
    """A torn write leaves no JSON object; a line that parses but fails its hash is tampering, not a tear."""
    try:
        return isinstance(json.loads(line), dict)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _cut_at(data: bytes) -> int:
    """Offset where the sound part of ``data`` (the file's tail, starting at a line boundary) ends."""
    end = len(data)
    if data and not data.endswith(b"\n"):
        end = data.rfind(b"\n") + 1  # an unterminated last line is torn, whatever it holds
    while end > 0:  # a terminated but unreadable last line (zero-filled block after a crash) is torn too
        start = data.rfind(b"\n", 0, end - 1) + 1
        line = data[start:end]
        if not _parses(line.strip()):  # also a blank or zero-filled line
            end = start
            continue
        break
    return end


def quarantine_torn_tail(path: Path, clock: Any = time.time) -> TornTail | None:
    """Move a torn last line of ``path`` to a side file and truncate; None when there was nothing to do."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    with path.open("rb") as handle:
        start = max(0, size - _TAIL_BYTES)
        handle.seek(start)
        data = handle.read()
    if start:
        data = data[data.find(b"\n") + 1:]  # begin at a line boundary
        start = size - len(data)
    cut = _cut_at(data)
    if cut == len(data):
        return None
    torn = data[cut:]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock()))
    side = path.with_name(f"{path.name}.torn-{stamp}")
    fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, torn)
        os.fsync(fd)
    finally:
        os.close(fd)
    with path.open("r+b") as handle:
        handle.truncate(start + cut)
        handle.flush()
        os.fsync(handle.fileno())
    return TornTail(side, len(torn), hashlib.sha256(torn).hexdigest(), data[:cut].count(b"\n"))


def register(subparsers: Any) -> None:
    """Add `voicebot audit verify|repair`."""
    parser = subparsers.add_parser("audit", help="check or repair the hash-chained audit log")
    actions = parser.add_subparsers(dest="audit_command", required=True)
    for name, help_text in (("verify", "check the whole chain (rotated files too); exit 1 at the first bad line"),
                            ("repair", "quarantine a torn last line into a side file and mark the gap")):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("path", nargs="?", type=Path, default=Path(DEFAULT_AUDIT_LOG),
                            help=f"audit log (default {DEFAULT_AUDIT_LOG})")
        action.set_defaults(func=_verify if name == "verify" else _repair)


def _verify(args: argparse.Namespace) -> int:
    from voicebot.compliance.audit import verify_chain

    if not args.path.exists():
        print(f"voicebot audit: {args.path} does not exist", file=sys.stderr)
        return 2
    ok, bad_file, bad_line = verify_chain(args.path)
    if ok:
        print(f"ok: {args.path} (hash chain intact)")
        return 0
    print(f"broken: {bad_file}:{bad_line} — the first line whose hash, link or sequence does not hold; "
          "a torn last line is fixed by `voicebot audit repair`")
    return 1


def _repair(args: argparse.Namespace) -> int:
    from voicebot.compliance.audit import AuditLog, verify_chain

    if not args.path.exists():
        print(f"voicebot audit: {args.path} does not exist", file=sys.stderr)
        return 2
    torn = quarantine_torn_tail(args.path)
    if torn is None:
        print(f"nothing to repair at the tail of {args.path}")
    else:
        print(f"quarantined {torn.size} torn bytes to {torn.side_file}")
        AuditLog(args.path, _gap=torn).close()  # writes the audit.gap entry
    ok, bad_file, bad_line = verify_chain(args.path)
    if not ok:
        print(f"still broken at {bad_file}:{bad_line}: not a torn tail (tampering or corruption); not repaired")
        return 1
    print(f"ok: {args.path} (hash chain intact)")
    return 0
