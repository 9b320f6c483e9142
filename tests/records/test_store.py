"""The call record store: events appended in order as they happen, readable while the call goes on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from voicebot.records.journal import CallJournal, event_kind
from voicebot.records.store import RecordStoreError, SqliteRecordStore


def test_events_are_kept_in_order_and_the_call_row_follows(tmp_path: Path) -> None:
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    store.start_call("c1", caller="+15550100", dialplan="finance")
    store.append("c1", "node", {"node": "main_menu"})
    store.append("c1", "caller", {"text": "my balance", "intent": "check_balance"})
    assert store.calls()[0]["node"] == "main_menu" and store.calls()[0]["ended_at"] is None
    store.end_call("c1", outcome="done", end_reason="caller hung up", duration_s=12.5)
    kinds = [event.kind for event in store.events("c1")]
    assert kinds == ["call_started", "node", "caller", "call_ended"]
    assert [event.seq for event in store.events("c1")] == [1, 2, 3, 4]
    call = store.calls()[0]
    assert (call["outcome"], call["end_reason"], call["duration_s"]) == ("done", "caller hung up", 12.5)
    assert (tmp_path / "calls.sqlite3").stat().st_mode & 0o777 == 0o600


def test_a_second_writer_continues_a_calls_sequence_and_sees_committed_events(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite3"
    first = SqliteRecordStore(path)
    first.start_call("c1")
    first.append("c1", "node", {"node": "greet"})
    # Another process (the CLI, a restarted node) reads what was committed, without the writer closing.
    reader = sqlite3.connect(str(path))
    assert reader.execute("SELECT COUNT(*) FROM call_events WHERE call_id = 'c1'").fetchone()[0] == 2
    second = SqliteRecordStore(path)
    assert second.append("c1", "node", {"node": "menu"}) == 3


def test_long_caller_text_is_clipped(tmp_path: Path) -> None:
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    store.append("c1", "caller", {"text": "a" * 100_000})
    assert len(store.events("c1")[0].data["text"]) < 5000


def test_an_unwritable_path_is_named_in_the_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RecordStoreError, match=str(blocker)):
        SqliteRecordStore(blocker / "calls.sqlite3")


def test_a_failing_store_never_raises_into_the_call(tmp_path: Path) -> None:
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    journal = CallJournal(store)
    store.close()  # every write now fails, as on a full disk or a removed file
    journal.start("c1", caller="x")
    journal.sink("c1")({"t": 1.0, "who": "bot", "text": "hello"})
    journal.end("c1", outcome="done")
    assert journal.flush()
    assert journal.failures == 3


def test_the_journal_writes_in_order_off_the_callers_thread(tmp_path: Path) -> None:
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    journal = CallJournal(store)
    journal.start("c1", caller="x")
    for index in range(50):
        journal.sink("c1")({"t": float(index), "who": "event", "text": "node", "node": f"n{index}"})
    journal.end("c1", outcome="completed")
    journal.close()
    reader = SqliteRecordStore(tmp_path / "calls.sqlite3")
    nodes = [event.data["node"] for event in reader.events("c1") if event.kind == "node"]
    assert nodes == [f"n{index}" for index in range(50)] and reader.calls()[0]["class"] == "contained"


def test_event_kinds_follow_the_transcript() -> None:
    assert event_kind({"who": "caller", "text": "hi"}) == "caller"
    assert event_kind({"who": "event", "text": "slot"}) == "slot"
