"""A torn last audit line (crash mid-write) no longer stops startup: it is quarantined into a side file, the chain
continues with a marked gap, and `voicebot audit verify|repair` inspect and fix a log offline."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.integration.support import start_server, stop_server
from voicebot.cli import main
from voicebot.compliance.audit import AuditLog, verify_chain

TORN = b'{"seq":4,"ts":"2026-12-07T11:00:00.000Z","actor":"admin:tok","action":"recording.re'


def torn_log(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with AuditLog(path) as audit:
        for n in range(3):
            audit.record("admin:tok", "recording.read", f"call-{n}")
    with path.open("ab") as handle:
        handle.write(TORN)  # the process died in the middle of this write


def entries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_server_starts_on_a_torn_audit_log_and_marks_the_gap(tmp_path: Path) -> None:
    audit_file = tmp_path / "audit" / "audit.jsonl"
    torn_log(audit_file)
    server = start_server(tmp_path)
    try:
        assert server.proc.poll() is None
        server.wait_for("api listening")
    finally:
        stop_server(server)
    ok, bad_file, bad_line = verify_chain(audit_file)
    assert ok, (bad_file, bad_line)
    (side,) = audit_file.parent.glob("audit.jsonl.torn-*")
    assert side.read_bytes() == TORN and stat.S_IMODE(side.stat().st_mode) == 0o600
    logged = entries(audit_file)
    assert [e["seq"] for e in logged[:4]] == [1, 2, 3, 4]
    gap = logged[3]
    assert gap["action"] == "audit.gap" and gap["details"]["side_file"] == side.name
    assert gap["details"]["bytes"] == len(TORN) and gap["prev"] == logged[2]["hash"]


def test_audit_verify_and_repair_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audit_file = tmp_path / "audit.jsonl"
    torn_log(audit_file)
    assert main(["audit", "verify", str(audit_file)]) == 1
    assert f"{audit_file}:4" in capsys.readouterr().out
    assert main(["audit", "repair", str(audit_file)]) == 0
    out = capsys.readouterr().out
    assert f"quarantined {len(TORN)} torn bytes" in out and "hash chain intact" in out
    assert main(["audit", "verify", str(audit_file)]) == 0
    assert entries(audit_file)[-1]["action"] == "audit.gap"
    assert main(["audit", "repair", str(audit_file)]) == 0  # nothing left to do
    assert "nothing to repair" in capsys.readouterr().out


def test_repair_refuses_to_paper_over_tampering(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audit_file = tmp_path / "audit.jsonl"
    with AuditLog(audit_file) as audit:
        for n in range(3):
            audit.record("admin:tok", "recording.read", f"call-{n}")
    lines = audit_file.read_text().splitlines()
    lines[2] = lines[2].replace("call-2", "call-X")  # complete JSON, wrong hash: edited, not torn
    audit_file.write_text("\n".join(lines) + "\n")
    assert main(["audit", "repair", str(audit_file)]) == 1
    assert "not a torn tail" in capsys.readouterr().out
    assert not list(tmp_path.glob("audit.jsonl.torn-*"))
