"""Two AuditLog writers on one file (the server and `voicebot token`) keep a single chain, across rotations."""

from __future__ import annotations

import json
from pathlib import Path

from voicebot.compliance.audit import AuditLog, rotated_files, verify_chain


def test_interleaved_writers_and_rotation_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    server, cli = AuditLog(path, max_bytes=2048), AuditLog(path, max_bytes=2048)
    for number in range(30):
        (server if number % 3 else cli).record("system", "event", f"n{number}", pad="x" * 100)
    server.close()
    cli.close()
    assert rotated_files(path)  # rotated at least once, by whichever writer crossed the limit
    assert verify_chain(path) == (True, None, None)
    seqs = [json.loads(line)["seq"] for file in [*rotated_files(path), path] for line in file.read_text().splitlines()]
    assert seqs == list(range(1, 31))
