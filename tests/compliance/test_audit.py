"""Audit log: append-only JSON lines, 0600, hash chain verification, rotation to read-only files."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from voicebot.compliance.audit import GENESIS, AuditLog, rotated_files, verify, verify_chain


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_are_chained_json_lines_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.jsonl"
    with AuditLog(path, fsync=True) as audit:
        first = audit.record("admin:alice", "admin.change", "queues/cards", field="priority", new=5)
        audit.record("agent:bob", "agent.login", "agent/bob", ip="127.0.0.1")
        audit.record("admin:alice", "recording.read", "call/abc", caller="+14155550123")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    entries = _lines(path)
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert entries[0]["prev"] == GENESIS and entries[1]["prev"] == first["hash"] == entries[0]["hash"]
    assert entries[0]["details"] == {"field": "priority", "new": 5}
    assert entries[2]["details"]["caller"] == "[PHONE]"  # audit lines hold no PII
    assert verify(path) == (True, None)


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as audit:
        audit.record("a", "config.reload", "sip_config/voicebot.yaml")
    with AuditLog(path) as audit:
        audit.record("a", "config.reload", "sip_config/voicebot.yaml")
    assert [e["seq"] for e in _lines(path)] == [1, 2]
    assert verify(path, GENESIS) == (True, None)


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder", "garbage"])
def test_verify_finds_the_first_tampered_line(tmp_path: Path, tamper: str) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as audit:
        for index in range(5):
            audit.record("admin:alice", "admin.change", f"item/{index}")
    lines = path.read_text().splitlines()
    if tamper == "edit":
        lines[2] = lines[2].replace("item/2", "item/9")
    elif tamper == "delete":
        del lines[2]
    elif tamper == "reorder":
        lines[2], lines[3] = lines[3], lines[2]
    else:
        lines[2] = "{not json"
    path.write_text("\n".join(lines) + "\n")
    assert verify(path) == (False, 3)


def test_rewritten_hashes_are_caught_by_the_next_line(tmp_path: Path) -> None:
    """An attacker who recomputes the edited line's own hash still breaks the next line's prev link."""
    from voicebot.compliance.audit import _entry_hash

    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as audit:
        for index in range(3):
            audit.record("x", "admin.change", f"item/{index}")
    entries = _lines(path)
    entries[1]["target"] = "item/forged"
    entries[1]["hash"] = _entry_hash(entries[1])
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert verify(path) == (False, 3)


def test_rotation_keeps_read_only_files_and_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, max_bytes=2048) as audit:
        for index in range(40):
            audit.record("admin:alice", "admin.change", f"item/{index}", note="x" * 40)
    rotated = rotated_files(path)
    assert len(rotated) >= 2
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o400 for p in rotated)
    assert all(p.stat().st_size <= 2048 for p in [*rotated, path])
    seqs = [e["seq"] for p in [*rotated, path] for e in _lines(p)]
    assert seqs == list(range(1, 41))
    assert verify_chain(path) == (True, None, None)
    os.chmod(rotated[0], 0o600)
    rotated[0].write_text(rotated[0].read_text().replace("item/0", "item/X"))
    ok, bad_file, bad_line = verify_chain(path)
    assert not ok and bad_file == rotated[0] and bad_line == 1


def test_concurrent_records_stay_one_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    threads = [threading.Thread(target=lambda n=n: [audit.record(f"t{n}", "context.read", "call/1")
                                                    for _ in range(50)]) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    audit.close()
    assert len(_lines(path)) == 200 and verify(path) == (True, None)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        AuditLog(tmp_path / "a.jsonl", max_bytes=10)
    with AuditLog(tmp_path / "a.jsonl") as audit, pytest.raises(ValueError, match="actor and an action"):
        audit.record("", "x", "y")
