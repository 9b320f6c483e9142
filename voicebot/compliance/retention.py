"""Retention: delete recordings and call records older than N days (by modification time), audited.

    voicebot retention --dry-run                       # what would go, from the configured directories
    voicebot retention --days 90 --dir var/recordings --dir var/calls --audit-log var/audit/audit.jsonl

Files are found recursively; symlinks are never followed or deleted; emptied sub-directories are removed (the
given directories themselves stay). Each real run writes one `retention.delete` audit entry (count, bytes, days,
directories); a dry run writes none.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_DAYS", "Expired", "delete_expired", "find_expired", "register"]

DEFAULT_DAYS = 90
DEFAULT_AUDIT_LOG = "var/audit/audit.jsonl"


@dataclass(frozen=True)
class Expired:
    path: Path
    age_days: float
    size: int


def find_expired(directories: Iterable[Path], days: float, now: float | None = None) -> list[Expired]:
    """Regular files under `directories` last modified more than `days` days before `now`, oldest first."""
    if days < 0:
        raise ValueError(f"days must be 0 or more, got {days}")
    now = time.time() if now is None else now
    cutoff = now - days * 86400
    found: list[Expired] = []
    for directory in directories:
        if not directory.is_dir():
            raise FileNotFoundError(f"retention directory {directory} does not exist or is not a directory")
        for root, dirs, files in os.walk(directory, followlinks=False):
            for name in files:
                path = Path(root) / name
                info = path.lstat()
                if path.is_symlink() or not path.is_file():
                    continue
                if info.st_mtime < cutoff:
                    found.append(Expired(path, (now - info.st_mtime) / 86400, info.st_size))
    return sorted(found, key=lambda e: -e.age_days)


def delete_expired(expired: list[Expired], directories: Iterable[Path]) -> list[Expired]:
    """Delete the files (those already gone are skipped) and then emptied sub-directories; returns what went."""
    deleted: list[Expired] = []
    for item in expired:
        try:
            item.path.unlink()
        except FileNotFoundError:
            continue
        deleted.append(item)
    for directory in directories:
        for root, _dirs, _files in sorted(os.walk(directory), key=lambda w: -len(w[0])):
            if Path(root) != directory:
                try:
                    Path(root).rmdir()
                except OSError:
                    pass  # not empty
    return deleted


def register(subparsers: Any) -> None:
    """Add `voicebot retention` to an argparse subparsers object."""
    parser = subparsers.add_parser("retention", help="delete recordings and call records older than N days")
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    parser.add_argument("--days", type=float, default=None,
                        help=f"keep files younger than this (default: recording.retention_days or {DEFAULT_DAYS})")
    parser.add_argument("--dir", dest="dirs", type=Path, action="append", default=None,
                        help="directory to clean (repeatable; default: the configured recording directory)")
    parser.add_argument("--config", type=Path, default=None, help="server config to read defaults from")
    parser.add_argument("--audit-log", type=Path, default=None, help=f"audit log (default {DEFAULT_AUDIT_LOG})")
    parser.add_argument("--records", type=Path, default=None,
                        help="call record store to trim too (default: the configured records.path, if it exists)")
    parser.set_defaults(func=_retention)


def _defaults(args: argparse.Namespace) -> tuple[list[Path], float]:
    dirs, days = args.dirs, args.days
    if dirs is None or days is None:
        from voicebot.config import load_server_config

        config_path = args.config
        if config_path is None:
            from voicebot.cli import DEFAULT_CONFIG

            config_path = DEFAULT_CONFIG
        config = load_server_config(config_path)
        recording = getattr(config, "recording", None)
        if dirs is None:
            dirs = [Path(recording.directory)] if recording is not None else []
        if days is None:
            days = float(getattr(recording, "retention_days", None) or DEFAULT_DAYS)
        records = getattr(config, "records", None)
        if args.dirs is None and args.records is None and records is not None and records.enabled \
                and Path(records.path).exists():  # relying on the configuration: its call records too
            args.records = Path(records.path)
    return list(dirs), float(days)


def _retention(args: argparse.Namespace) -> int:
    from voicebot.compliance.audit import AuditLog

    try:
        dirs, days = _defaults(args)
        expired = find_expired(dirs, days)
    except (ValueError, FileNotFoundError) as exc:
        print(f"voicebot retention: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - config errors carry file:line in their text
        print(f"voicebot retention: cannot read configuration:\n{exc}", file=sys.stderr)
        return 2
    verb = "would delete" if args.dry_run else "deleted"
    if args.dry_run:
        done = expired
    else:
        done = delete_expired(expired, dirs)
    for item in done:
        print(f"{verb}: {item.path} ({item.age_days:.0f} days old, {item.size} bytes)")
    total = sum(item.size for item in done)
    print(f"{len(done)} file(s), {total} bytes {verb} (older than {days:g} days in {', '.join(map(str, dirs))})")
    calls = 0
    if args.records is not None:
        from voicebot.records.store import SqliteRecordStore

        store = SqliteRecordStore(args.records)
        try:
            calls = store.delete_before(time.time() - days * 86400, dry_run=args.dry_run)
        finally:
            store.close()
        print(f"{calls} call record(s) {verb} from {args.records}")
    if not args.dry_run:
        with AuditLog(args.audit_log or DEFAULT_AUDIT_LOG) as audit:
            audit.record(f"cli:{_user()}", "retention.delete", ",".join(map(str, dirs)), days=days,
                         files=len(done), bytes=total, paths=[str(item.path) for item in done[:1000]],
                         call_records=calls)
    return 0


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())
