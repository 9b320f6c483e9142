"""Call records written as the call goes: one row per event, committed when it happens (SQLite, embedded default).

A call's record is its events in order — call started, each bot prompt and caller turn (text, intent, confidence;
redacted before they reach the record), dialplan events (node entered, slot, webhook result, queue joined, agent
answered, transfer), and the end (outcome, reason, duration, recording) — so a crash or `kill -9` loses at most
the event being written. The database runs in WAL mode with `synchronous=NORMAL`: a commit survives the
process dying at once (only a power loss may take the last transactions), and readers (`voicebot records`, the
API) never block the writer.

Schema (version 3):
    calls(call_id PK, started_at, ended_at, dialplan, caller, callee, channel, outcome, end_reason, duration_s,
          recording, node, lang, queued, to_person, left_early, class,
          queue, queued_at, answered_at, ewt_at, ewt_low, ewt_high)   -- one row per call, updated as it goes
    call_events(call_id, seq, t, kind, data JSON, PK(call_id, seq))      -- append-only
    rollups(day, dialplan, lang, metric, key, count)   -- daily counters for the analytics (summary.py)
    queue_rollups(day, dialplan, lang, queue, metric, key, count)   -- the same, for calls that joined `queue`
    outbox(id, op, payload)   -- with `ship=True`: every write, in order, for voicebot/records/postgres.py to
                              -- forward to a shared PostgreSQL (written in the same transaction as the row)
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicebot.records.summary import ABANDONED, SUMMARY_COLUMNS, CallSummary, day_of, replay, rollups_for_event

__all__ = ["SCHEMA", "SCHEMA_VERSION", "CallEvent", "RecordStoreError", "SqliteRecordStore"]

SCHEMA_VERSION = 3
_ADDED_COLUMNS = (("lang", "TEXT NOT NULL DEFAULT ''"), ("queued", "INTEGER NOT NULL DEFAULT 0"),  # version 2
                  ("to_person", "INTEGER NOT NULL DEFAULT 0"), ("left_early", "INTEGER NOT NULL DEFAULT 0"),
                  ("class", "TEXT"), ("queue", "TEXT"), ("queued_at", "REAL"), ("answered_at", "REAL"),  # version 3
                  ("ewt_at", "REAL"), ("ewt_low", "REAL"), ("ewt_high", "REAL"))
SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    ended_at REAL,
    dialplan TEXT,
    caller TEXT,
    callee TEXT,
    channel TEXT,
    outcome TEXT,
    end_reason TEXT,
    duration_s REAL,
    recording TEXT,
    node TEXT,
    lang TEXT NOT NULL DEFAULT '',
    queued INTEGER NOT NULL DEFAULT 0,
    to_person INTEGER NOT NULL DEFAULT 0,
    left_early INTEGER NOT NULL DEFAULT 0,
    class TEXT,
    queue TEXT,
    queued_at REAL,
    answered_at REAL,
    ewt_at REAL,
    ewt_low REAL,
    ewt_high REAL
);
CREATE TABLE IF NOT EXISTS call_events (
    call_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    t REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    op TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rollups (
    day TEXT NOT NULL,
    dialplan TEXT NOT NULL,
    lang TEXT NOT NULL,
    metric TEXT NOT NULL,
    key TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (day, dialplan, lang, metric, key)
);
CREATE TABLE IF NOT EXISTS queue_rollups (
    day TEXT NOT NULL,
    dialplan TEXT NOT NULL,
    lang TEXT NOT NULL,
    queue TEXT NOT NULL,
    metric TEXT NOT NULL,
    key TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (queue, day, dialplan, lang, metric, key)
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_at);
CREATE INDEX IF NOT EXISTS calls_queued ON calls (started_at, queue, dialplan, lang, queued_at, answered_at, ewt_at,
    ewt_low, ewt_high, ended_at, class) WHERE queued_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS calls_scope ON calls (started_at, dialplan, lang, class, ended_at);
CREATE INDEX IF NOT EXISTS events_kind ON call_events (kind, t);
"""
_MAX_TEXT = 4000  # a single field of an event is clipped (caller-controlled text must not bloat the store)


class RecordStoreError(ValueError):
    """The record store cannot be opened or written; the message names the path."""


@dataclass(frozen=True)
class CallEvent:
    call_id: str
    seq: int
    t: float
    kind: str
    data: dict[str, Any]


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return value[:_MAX_TEXT] + "…"
    if isinstance(value, Mapping):
        return {str(k): _clip(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clip(v) for v in value]
    return value


class SqliteRecordStore:
    """Call records in one SQLite file; safe to share between the event loop and worker threads."""

    def __init__(self, path: str | Path, *, ship: bool = False) -> None:
        self.path = Path(path)
        self.ship = ship
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level="DEFERRED")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.commit()
            self.path.chmod(0o600)  # call records hold (masked) caller data: private like tokens and audit
        except (OSError, sqlite3.Error) as exc:
            raise RecordStoreError(f"cannot open the call record store {self.path}: {exc}") from exc
        self._lock = threading.Lock()
        self._seq: dict[str, int] = {}
        self._calls: dict[str, CallSummary] = {}

    def _migrate(self) -> None:
        """Older files gain the summary columns they lack; their calls are counted from then on."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(calls)")}
        if have:
            for name, kind in _ADDED_COLUMNS:
                if name not in have:
                    self._db.execute(f"ALTER TABLE calls ADD COLUMN {name} {kind}")

    def _summary(self, call_id: str) -> CallSummary:
        summary = self._calls.get(call_id)
        if summary is None:
            row = self._db.execute(f"SELECT dialplan, {', '.join(SUMMARY_COLUMNS)} FROM calls WHERE call_id = ?",
                                   (call_id,)).fetchone()
            summary = CallSummary.from_row(row[0], row[1:]) if row is not None else CallSummary()
            self._calls[call_id] = summary
        return summary

    def _count(self, t: float, summary: CallSummary, metric: str, key: str, *, lang: str | None = None,
               everywhere: bool = True) -> None:
        """One more in the day's counter (and in the call's queue's, once it joined one)."""
        lang = summary.lang if lang is None else lang
        if everywhere:
            self._db.execute(
                "INSERT INTO rollups (day, dialplan, lang, metric, key, count) VALUES (?, ?, ?, ?, ?, 1) "
                "ON CONFLICT (day, dialplan, lang, metric, key) DO UPDATE SET count = count + 1",
                (day_of(t), summary.dialplan, lang, metric, key))
        if summary.queue:
            self._db.execute(
                "INSERT INTO queue_rollups (day, dialplan, lang, queue, metric, key, count) "
                "VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT (queue, day, dialplan, lang, metric, key) "
                "DO UPDATE SET count = count + 1", (day_of(t), summary.dialplan, lang, summary.queue, metric, key))

    def _joined_queue(self, call_id: str, summary: CallSummary, seq: int) -> None:
        """The call just joined its queue: its turns so far count under that queue too."""
        rows = self._db.execute("SELECT t, kind, data FROM call_events WHERE call_id = ? AND seq < ? ORDER BY seq",
                                (call_id, seq)).fetchall()
        for t, lang, metric, key in replay(summary.dialplan, ((r[0], r[1], json.loads(r[2])) for r in rows)):
            self._count(t, summary, metric, key, lang=lang, everywhere=False)

    # ------------------------------------------------------------------ writing
    def start_call(self, call_id: str, *, caller: str = "", callee: str = "", dialplan: str = "",
                   channel: str = "sip", started_at: float | None = None) -> None:
        """Open a call's record (its first event, `call_started`)."""
        started = started_at if started_at is not None else time.time()
        row = {"call_id": call_id, "started_at": started, "dialplan": dialplan, "caller": caller, "callee": callee,
               "channel": channel}
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO calls (call_id, started_at, dialplan, caller, callee, channel) "
                "VALUES (:call_id, :started_at, :dialplan, :caller, :callee, :channel)", row)
            self._calls[call_id] = CallSummary(dialplan=dialplan)
            self._outbox("call", row)
        self.append(call_id, "call_started", {"caller": caller, "callee": callee, "dialplan": dialplan,
                                              "channel": channel}, t=started)

    def append(self, call_id: str, kind: str, data: Mapping[str, Any], *, t: float | None = None) -> int:
        """Append one event now (committed before returning); its sequence number within the call."""
        payload = json.dumps(_clip(dict(data)), ensure_ascii=False, default=str)
        with self._lock, self._transaction():
            seq = self._seq.get(call_id)
            if seq is None:
                row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM call_events WHERE call_id = ?",
                                       (call_id,)).fetchone()
                seq = int(row[0])
            seq += 1
            self._seq[call_id] = seq
            when = t if t is not None else time.time()
            self._db.execute("INSERT INTO call_events (call_id, seq, t, kind, data) VALUES (?, ?, ?, ?, ?)",
                             (call_id, seq, when, kind, payload))
            summary = self._summary(call_id)
            before = summary.row()
            counted = rollups_for_event(summary, kind, data, when)
            if summary.queue and not before[5]:
                self._joined_queue(call_id, summary, seq)
            for metric, key in counted:
                self._count(when, summary, metric, key)
            if summary.row() != before:
                self._db.execute(f"UPDATE calls SET {', '.join(c + ' = ?' for c in SUMMARY_COLUMNS)} "
                                 "WHERE call_id = ?", (*summary.row(), call_id))
            node = data.get("node") if isinstance(data, Mapping) else None
            self._outbox("event", {"call_id": call_id, "seq": seq, "t": when, "kind": kind, "data": payload,
                                   "node": node if isinstance(node, str) and node else None})
        return seq

    def end_call(self, call_id: str, *, outcome: str = "", end_reason: str = "", duration_s: float | None = None,
                 recording: str | None = None, dialplan: str | None = None, extra: Mapping[str, Any] | None = None,
                 ended_at: float | None = None) -> None:
        """Close a call's record: its last event, `call_ended`, and the call row's outcome."""
        ended = ended_at if ended_at is not None else time.time()
        self.append(call_id, "call_ended", {"outcome": outcome, "end_reason": end_reason, "duration_s": duration_s,
                                            "recording": recording, **dict(extra or {})}, t=ended)
        row = {"call_id": call_id, "ended_at": ended, "outcome": outcome, "end_reason": end_reason,
               "duration_s": duration_s, "recording": recording, "dialplan": dialplan or None}
        with self._lock, self._transaction():
            summary = self._summary(call_id)
            klass = summary.final_class(outcome)
            self._db.execute(
                "UPDATE calls SET ended_at = :ended_at, outcome = :outcome, end_reason = :end_reason, "
                "duration_s = :duration_s, recording = :recording, dialplan = COALESCE(:dialplan, dialplan), "
                "class = :class WHERE call_id = :call_id", {**row, "class": klass})
            if klass in ABANDONED and summary.node:
                self._count(ended, summary, "left", summary.node)
            self._outbox("end", row)
            self._seq.pop(call_id, None)
            self._calls.pop(call_id, None)

    # ------------------------------------------------------------------ shipping to a shared database
    def _transaction(self) -> sqlite3.Connection:
        return self._db  # sqlite3's context manager: BEGIN ... COMMIT (ROLLBACK on error)

    def _outbox(self, op: str, row: Mapping[str, Any]) -> None:
        if self.ship:
            self._db.execute("INSERT INTO outbox (op, payload) VALUES (?, ?)",
                             (op, json.dumps(dict(row), ensure_ascii=False, default=str)))

    def pending(self, limit: int = 500) -> list[tuple[int, str, dict[str, Any]]]:
        """Writes not yet forwarded to the shared database, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT id, op, payload FROM outbox ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [(row[0], row[1], json.loads(row[2])) for row in rows]

    def shipped(self, up_to_id: int) -> None:
        """Forget the forwarded writes up to `up_to_id` (the shared database committed them)."""
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM outbox WHERE id <= ?", (up_to_id,))

    def backlog(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def delete_before(self, cutoff: float, *, dry_run: bool = False) -> int:
        """Retention: forget calls started before `cutoff` (epoch seconds) with their events; how many."""
        with self._lock, self._transaction():
            old = "SELECT call_id FROM calls WHERE started_at < ?"
            count = int(self._db.execute(f"SELECT COUNT(*) FROM ({old})", (cutoff,)).fetchone()[0])
            if not dry_run:
                self._db.execute(f"DELETE FROM call_events WHERE call_id IN ({old})", (cutoff,))
                self._db.execute("DELETE FROM calls WHERE started_at < ?", (cutoff,))
                self._db.execute("DELETE FROM rollups WHERE day < ?", (day_of(cutoff),))
                self._db.execute("DELETE FROM queue_rollups WHERE day < ?", (day_of(cutoff),))
        return count

    # ------------------------------------------------------------------ reading
    def events(self, call_id: str) -> list[CallEvent]:
        with self._lock:
            rows = self._db.execute("SELECT call_id, seq, t, kind, data FROM call_events WHERE call_id = ? "
                                    "ORDER BY seq", (call_id,)).fetchall()
        return [CallEvent(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def dialplan_of(self, call_id: str) -> str:
        """The dialplan the call ran ("" if the call is not recorded)."""
        with self._lock:
            row = self._db.execute("SELECT dialplan FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        return str(row[0] or "") if row is not None else ""

    def calls(self, *, limit: int = 50) -> list[dict[str, Any]]:
        """The most recent calls, newest first."""
        with self._lock:
            cursor = self._db.execute("SELECT * FROM calls ORDER BY started_at DESC LIMIT ?", (limit,))
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()
