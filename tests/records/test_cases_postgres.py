"""Cases reach the shared PostgreSQL too (migration 4): each create and update is queued in the node's outbox with
the write and upserted in order, so the database holds each case as the node last changed it."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from voicebot.records.aftercall import summarize
from voicebot.records.cases import CaseStore
from voicebot.records.postgres import Shipper
from voicebot.records.store import SqliteRecordStore

pytestmark = pytest.mark.timeout(120)


def test_cases_are_shipped_and_updates_replace_the_earlier_state(postgres_dsn: str, tmp_path: Path) -> None:
    records = SqliteRecordStore(tmp_path / "calls.sqlite3", ship=True)
    cases = CaseStore(tmp_path / "calls.sqlite3", ship=True)
    records.start_call("c1", caller="+15550001111", dialplan="airline")
    records.append("c1", "agent_answered", {"agent": "a1"})
    records.end_call("c1", outcome="agent")
    _row, events = cases.call("c1")
    case = cases.create_for_call("c1", summarize(events), industry="airline", owner="a1", caller="+15550001111",
                                 now=100.0)
    assert case is not None
    cases.update(case["id"], {"status": "pending", "follow_up_at": 5000.0, "disposition": "rebooked"}, now=200.0)
    shipper = Shipper(records, postgres_dsn, node="n1")
    shipper.start()
    try:
        deadline = time.monotonic() + 30
        while records.backlog():
            assert time.monotonic() < deadline, "outbox not shipped"
            time.sleep(0.05)
    finally:
        shipper.stop()
    with psycopg.connect(postgres_dsn) as db:
        row = db.execute("SELECT status, owner, disposition, follow_up_at, server_node, summary->>'agent', "
                         "updated_at FROM cases WHERE id = %s", (case["id"],)).fetchone()
    assert row == ("pending", "a1", "rebooked", 5000.0, "n1", "a1", 200.0)
    cases.close()
    records.close()
