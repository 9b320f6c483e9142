"""Retention: old recordings/call records are listed (dry run) or deleted, and a real run is audited."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pytest

from voicebot.compliance.audit import verify
from voicebot.compliance.retention import delete_expired, find_expired, register

DAY = 86400


def _file(path: Path, age_days: float, now: float, size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (now - age_days * DAY, now - age_days * DAY))
    return path


def _tree(tmp_path: Path, now: float) -> tuple[Path, Path]:
    recordings, records = tmp_path / "recordings", tmp_path / "calls"
    _file(recordings / "2024-01" / "old.wav", 120, now, 100)
    _file(recordings / "new.wav", 5, now)
    _file(records / "old.jsonl", 91, now, 20)
    _file(records / "edge.jsonl", 89, now)
    (recordings / "link.wav").symlink_to(recordings / "2024-01" / "old.wav")
    return recordings, records


def test_find_and_delete_expired(tmp_path: Path) -> None:
    now = time.time()
    recordings, records = _tree(tmp_path, now)
    expired = find_expired([recordings, records], 90, now)
    assert [e.path.name for e in expired] == ["old.wav", "old.jsonl"]
    deleted = delete_expired(expired, [recordings, records])
    assert len(deleted) == 2 and not (recordings / "2024-01").exists()  # emptied sub-directory removed
    assert (recordings / "new.wav").exists() and (records / "edge.jsonl").exists() and recordings.is_dir()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="days must be 0 or more"):
        find_expired([tmp_path], -1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_expired([tmp_path / "nope"], 30)


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["retention", *argv])
    return args.func(args)


def test_cli_dry_run_then_real_run_is_audited(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    recordings, records = _tree(tmp_path, now)
    audit = tmp_path / "audit.jsonl"
    common = ["--days", "90", "--dir", str(recordings), "--dir", str(records), "--audit-log", str(audit)]
    assert _run(["--dry-run", *common]) == 0
    out = capsys.readouterr().out
    assert "would delete:" in out and "old.wav" in out and "2 file(s), 120 bytes would delete" in out
    assert (recordings / "2024-01" / "old.wav").exists() and not audit.exists()
    assert _run(common) == 0
    out = capsys.readouterr().out
    assert "deleted:" in out and not (records / "old.jsonl").exists()
    assert audit.exists() and verify(audit) == (True, None)
    assert '"action":"retention.delete"' in audit.read_text() and '"files":2' in audit.read_text()


def test_cli_reports_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["--days", "1", "--dir", str(tmp_path / "nope"), "--audit-log", str(tmp_path / "a")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_trims_the_call_record_store_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from voicebot.records.store import SqliteRecordStore

    now = time.time()
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    store.start_call("old", started_at=now - 100 * 86400)
    store.append("old", "node", {"node": "greet"})
    store.start_call("new", started_at=now - 1 * 86400)
    store.close()
    (tmp_path / "rec").mkdir()
    common = ["--days", "90", "--dir", str(tmp_path / "rec"), "--records", str(tmp_path / "calls.sqlite3"),
              "--audit-log", str(tmp_path / "audit.jsonl")]
    assert _run(["--dry-run", *common]) == 0
    assert "1 call record(s) would delete" in capsys.readouterr().out
    assert _run(common) == 0
    assert "1 call record(s) deleted" in capsys.readouterr().out
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    assert [call["call_id"] for call in store.calls()] == ["new"] and store.events("old") == []
    assert '"call_records":1' in (tmp_path / "audit.jsonl").read_text()
