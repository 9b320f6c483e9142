"""Append-only, tamper-evident audit log: one JSON object per line, each carrying the previous line's hash.

    audit = AuditLog("var/audit/audit.jsonl")
    audit.record("admin:alice", "recording.read", "call/7f3a2c", ip="10.0.0.5")
    ok, first_bad_line = verify("var/audit/audit.jsonl")

Line: {"seq": 12, "ts": "2024-03-15T10:30:00.123Z", "actor": ..., "action": ..., "target": ..., "details": {...},
       "prev": "<hash of line 11>", "hash": "<sha256 of this entry without 'hash', canonical JSON>"}
The first line of the first file has prev = "0"*64. Actions in use: admin.change, config.reload, recording.read,
context.read, agent.login, agent.logout, retention.delete (free text; dotted by convention).

Writes use O_APPEND (one write() per line), the file is created 0600, optional fsync per record. Several processes
may append to one log (the server and `voicebot token`): each record is written under an exclusive lock on
<name>.lock and first picks up lines (and rotations) written by the others, so the chain never forks. When a file would
pass `max_bytes` it is renamed to <name>.<n> (n = 1, 2, ... oldest first), made read-only (0400), and the chain
continues in a fresh file: its first line's prev is the last hash of the rotated one (`verify_chain` checks that).
Target and details pass through the PII redactor, so an audit line never holds a card or phone number.
A torn last line (crash mid-write) is quarantined at startup and the chain goes on with an `audit.gap` entry
(voicebot.compliance.audit_repair; `voicebot audit verify|repair`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from voicebot.compliance.redact import Redactor

__all__ = ["GENESIS", "AuditLog", "rotated_files", "verify", "verify_chain"]

log = logging.getLogger("voicebot.compliance.audit")

GENESIS = "0" * 64
_TAIL_BYTES = 65536


def _entry_hash(entry: dict[str, Any]) -> str:
    body = {key: value for key, value in entry.items() if key != "hash"}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _last_entry(path: Path) -> dict[str, Any] | None:
    """The last complete JSON line of `path`, or None for a missing/empty file."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read()
    except FileNotFoundError:
        return None
    for line in reversed(tail.splitlines()):
        if line.strip():
            try:
                return json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: last line is not valid JSON ({exc}); run verify() to inspect") from None
    return None


def rotated_files(path: str | Path) -> list[Path]:
    """Rotated files of an audit log, oldest first (<name>.1, <name>.2, ...)."""
    base = Path(path)
    found = []
    for candidate in base.parent.glob(base.name + ".*"):
        suffix = candidate.name[len(base.name) + 1:]
        if suffix.isdigit():
            found.append((int(suffix), candidate))
    return [p for _, p in sorted(found)]


class AuditLog:
    """Thread-safe appender. One instance per file per process."""

    def __init__(
        self,
        path: str | Path,
        *,
        fsync: bool = False,
        max_bytes: int = 50 * 1024 * 1024,
        redactor: Redactor | None = None,
        clock: Any = time.time,
        _gap: Any = None,
    ) -> None:
        if max_bytes < 1024:
            raise ValueError(f"max_bytes must be at least 1024, got {max_bytes}")
        self.path = Path(path)
        self.fsync = fsync
        self.max_bytes = max_bytes
        self.redactor = redactor or Redactor()
        self._clock = clock
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        self._prev, self._seq = GENESIS, 0
        self._seen: tuple[int, int] | None = None  # (inode, size) of the log after our last read or write
        from voicebot.compliance.audit_repair import quarantine_torn_tail

        with self._file_lock():
            torn = quarantine_torn_tail(self.path, clock) or _gap  # a torn last line from a crash: set aside
            self._fd = self._open()
            self._follow()
        if torn is not None:
            log.warning("audit log had a torn last line: quarantined, chain continues with a gap entry",
                        extra={"fields": {"path": str(self.path), "side_file": str(torn.side_file),
                                          "bytes": torn.size}})
            self.record("system", "audit.gap", str(self.path), side_file=torn.side_file.name, bytes=torn.size,
                        sha256=torn.sha256, reason="torn last line quarantined at startup")

    def _file_lock(self) -> _FileLock:
        return _FileLock(self._lock_fd)

    def _follow(self) -> None:
        """Under the file lock: reopen after another writer's rotation, re-read the tail after its appends."""
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            current = None
        if current != os.fstat(self._fd).st_ino:
            os.close(self._fd)
            self._fd = self._open()
        info = os.fstat(self._fd)
        if (info.st_ino, info.st_size) == self._seen:
            return
        last = _last_entry(self.path)
        if last is None:
            rotated = rotated_files(self.path)
            last = _last_entry(rotated[-1]) if rotated else None
        self._prev = str(last["hash"]) if last else GENESIS
        self._seq = int(last["seq"]) if last else 0
        self._seen = (info.st_ino, info.st_size)

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        return fd

    def record(self, actor: str, action: str, target: str, **details: Any) -> dict[str, Any]:
        """Append one entry and return it (with its hash)."""
        if not actor or not action:
            raise ValueError("an audit entry needs an actor and an action")
        now = self._clock()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        with self._lock, self._file_lock():
            self._follow()
            entry: dict[str, Any] = {
                "seq": self._seq + 1,
                "ts": stamp,
                "actor": self.redactor.redact(str(actor)),
                "action": str(action),
                "target": str(target),  # an identifier (call id, agent, path), never PII text: kept for correlation
                "details": self.redactor.redact_obj(json.loads(json.dumps(details, default=str))),
                "prev": self._prev,
            }
            entry["hash"] = _entry_hash(entry)
            line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
            if os.fstat(self._fd).st_size + len(line) > self.max_bytes and os.fstat(self._fd).st_size > 0:
                self._rotate()
            os.write(self._fd, line)
            if self.fsync:
                os.fsync(self._fd)
            self._prev, self._seq = entry["hash"], entry["seq"]
            info = os.fstat(self._fd)
            self._seen = (info.st_ino, info.st_size)
        return entry

    def _rotate(self) -> None:
        os.close(self._fd)
        rotated = rotated_files(self.path)
        number = int(rotated[-1].name.rsplit(".", 1)[1]) + 1 if rotated else 1
        target = self.path.with_name(f"{self.path.name}.{number}")
        os.rename(self.path, target)
        os.chmod(target, 0o400)
        self._fd = self._open()

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                os.close(self._lock_fd)
                self._fd = self._lock_fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _FileLock:
    """An exclusive flock on an open file descriptor (blocks until the other process releases it)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)


def verify(path: str | Path, expected_prev: str | None = None) -> tuple[bool, int | None]:
    """Check one file's hash chain: (True, None), or (False, 1-based number of the first bad line).

    A line is bad when it is not JSON, its hash does not match its content, its prev is not the previous
    line's hash, or its seq does not follow. `expected_prev` checks the first line's link too (for rotated chains;
    GENESIS for the very first file). A missing file raises FileNotFoundError.
    """
    prev = expected_prev
    seq: int | None = None
    with Path(path).open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                entry = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                return False, number
            if not isinstance(entry, dict) or entry.get("hash") != _entry_hash(entry):
                return False, number
            if prev is not None and entry.get("prev") != prev:
                return False, number
            if seq is not None and entry.get("seq") != seq + 1:
                return False, number
            prev, seq = entry["hash"], entry.get("seq")
    return True, None


def verify_chain(path: str | Path) -> tuple[bool, Path | None, int | None]:
    """Verify the rotated files and the current one as one chain from GENESIS: (ok, bad file, bad line)."""
    prev = GENESIS
    for file in [*rotated_files(path), Path(path)]:
        if not file.exists():
            continue
        ok, line = verify(file, prev)
        if not ok:
            return False, file, line
        last = _last_entry(file)
        if last is not None:
            prev = last["hash"]
    return True, None, None
