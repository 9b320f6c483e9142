"""Call records of several nodes in one PostgreSQL (clusters), fed from each node's local SQLite outbox.

Every node writes its calls' events to its own SQLite file first (durable at once: a crash loses at most the event
being written) with `ship=True`, which queues each write in the file's `outbox` table in the same transaction. A
`Shipper` thread forwards the outbox, oldest first, in batches, each batch in one PostgreSQL transaction; rows
are idempotent (events keyed by call id + sequence, call rows upserted), so a batch sent twice after a lost
acknowledgement changes nothing. While PostgreSQL is unreachable the outbox simply grows (one warning, then one
line a minute) and the shipper retries with backoff; when the connection is back it catches up in order.

Schema changes are numbered migrations applied once (`schema_migrations`), by `migrate(dsn)` at start or by
`voicebot records migrate`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from voicebot.records.store import SqliteRecordStore
from voicebot.records.summary import ABANDONED, SUMMARY_COLUMNS, CallSummary, day_of, replay, rollups_for_event

__all__ = ["MIGRATIONS", "Shipper", "migrate"]

log = logging.getLogger("voicebot.records")

MIGRATIONS: list[tuple[int, str]] = [
    (1, """
CREATE TABLE calls (
    call_id TEXT PRIMARY KEY,
    server_node TEXT,
    started_at DOUBLE PRECISION NOT NULL,
    ended_at DOUBLE PRECISION,
    dialplan TEXT,
    caller TEXT,
    callee TEXT,
    channel TEXT,
    outcome TEXT,
    end_reason TEXT,
    duration_s DOUBLE PRECISION,
    recording TEXT,
    node TEXT
);
CREATE TABLE call_events (
    call_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    t DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    data JSONB NOT NULL,
    PRIMARY KEY (call_id, seq)
);
CREATE INDEX calls_started ON calls (started_at);
CREATE INDEX events_kind ON call_events (kind, t);
"""),
    (2, """
ALTER TABLE calls ADD COLUMN lang TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN queued BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE calls ADD COLUMN to_person BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE calls ADD COLUMN left_early BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE calls ADD COLUMN class TEXT;
CREATE TABLE rollups (
    day TEXT NOT NULL,
    dialplan TEXT NOT NULL,
    lang TEXT NOT NULL,
    metric TEXT NOT NULL,
    key TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (day, dialplan, lang, metric, key)
);
CREATE INDEX calls_scope ON calls (started_at, dialplan, lang, class, ended_at);
"""),
    (3, """
ALTER TABLE calls ADD COLUMN queue TEXT;
ALTER TABLE calls ADD COLUMN queued_at DOUBLE PRECISION;
ALTER TABLE calls ADD COLUMN answered_at DOUBLE PRECISION;
ALTER TABLE calls ADD COLUMN ewt_at DOUBLE PRECISION;
ALTER TABLE calls ADD COLUMN ewt_low DOUBLE PRECISION;
ALTER TABLE calls ADD COLUMN ewt_high DOUBLE PRECISION;
CREATE TABLE queue_rollups (
    day TEXT NOT NULL,
    dialplan TEXT NOT NULL,
    lang TEXT NOT NULL,
    queue TEXT NOT NULL,
    metric TEXT NOT NULL,
    key TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (queue, day, dialplan, lang, metric, key)
);
CREATE INDEX calls_queued ON calls (started_at, queue, dialplan, lang, queued_at, answered_at, ewt_at, ewt_low,
    ewt_high, ended_at, class) WHERE queued_at IS NOT NULL;
"""),
    (4, """
CREATE TABLE cases (
    id TEXT PRIMARY KEY,
    server_node TEXT,
    call_id TEXT NOT NULL UNIQUE,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    owner TEXT,
    industry TEXT NOT NULL DEFAULT '',
    disposition TEXT,
    follow_up_at DOUBLE PRECISION,
    callback_number TEXT,
    queue TEXT,
    note TEXT NOT NULL DEFAULT '',
    summary JSONB NOT NULL
);
CREATE INDEX cases_status ON cases (status, updated_at);
"""),
]
_CASE_COLUMNS = ("call_id", "created_at", "updated_at", "status", "owner", "industry", "disposition", "follow_up_at",
                 "callback_number", "queue", "note", "summary")


def migrate(connection: Any) -> int:
    """Apply the migrations this database lacks (under an advisory lock: nodes starting together are safe);
    returns the schema version."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(7478001)")
        connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                           "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        done = {row[0] for row in connection.execute("SELECT version FROM schema_migrations").fetchall()}
        for version, sql in MIGRATIONS:
            if version not in done:
                connection.execute(sql)
                connection.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                log.info("records schema migrated", extra={"fields": {"version": version}})
    return max(version for version, _ in MIGRATIONS)


def _summary(connection: Any, call_id: str) -> CallSummary:
    row = connection.execute(f"SELECT dialplan, {', '.join(SUMMARY_COLUMNS)} FROM calls WHERE call_id = %s",
                             (call_id,)).fetchone()
    return CallSummary.from_row(row[0], row[1:]) if row is not None else CallSummary()


def _count(connection: Any, t: float, summary: CallSummary, metric: str, key: str, *, lang: str | None = None,
           everywhere: bool = True) -> None:
    lang = summary.lang if lang is None else lang
    if everywhere:
        connection.execute(
            "INSERT INTO rollups (day, dialplan, lang, metric, key, count) VALUES (%s, %s, %s, %s, %s, 1) "
            "ON CONFLICT (day, dialplan, lang, metric, key) DO UPDATE SET count = rollups.count + 1",
            (day_of(t), summary.dialplan, lang, metric, key))
    if summary.queue:
        connection.execute(
            "INSERT INTO queue_rollups (day, dialplan, lang, queue, metric, key, count) "
            "VALUES (%s, %s, %s, %s, %s, %s, 1) ON CONFLICT (queue, day, dialplan, lang, metric, key) "
            "DO UPDATE SET count = queue_rollups.count + 1", (day_of(t), summary.dialplan, lang, summary.queue,
                                                               metric, key))


def _apply(connection: Any, node: str, op: str, row: dict[str, Any]) -> None:
    """One outbox write, idempotently: a replayed event or end changes nothing (summaries and roll-ups follow
    only writes that were new)."""
    if op == "call":
        connection.execute(
            "INSERT INTO calls (call_id, server_node, started_at, dialplan, caller, callee, channel) "
            "VALUES (%(call_id)s, %(server_node)s, %(started_at)s, %(dialplan)s, %(caller)s, %(callee)s, %(channel)s) "
            "ON CONFLICT (call_id) DO NOTHING", {**row, "server_node": node})
    elif op == "event":
        inserted = connection.execute(
            "INSERT INTO call_events (call_id, seq, t, kind, data) VALUES (%(call_id)s, %(seq)s, %(t)s, %(kind)s, "
            "%(data)s::jsonb) ON CONFLICT (call_id, seq) DO NOTHING RETURNING 1", row).fetchone()
        if inserted is None:
            return
        data = json.loads(row["data"])
        summary = _summary(connection, row["call_id"])
        if row["kind"] == "node" and isinstance(data.get("node"), str):
            earlier = connection.execute(
                "SELECT 1 FROM call_events WHERE call_id = %s AND kind = 'node' AND data->>'node' = %s AND seq < %s "
                "LIMIT 1", (row["call_id"], data["node"], row["seq"])).fetchone()
            if earlier is not None:
                summary.visited.add(data["node"])
        joined_before = bool(summary.queue)
        counted = rollups_for_event(summary, row["kind"], data, row["t"])
        if summary.queue and not joined_before:  # the call's turns so far count under its queue too
            earlier = connection.execute("SELECT t, kind, data FROM call_events WHERE call_id = %s AND seq < %s "
                                         "ORDER BY seq", (row["call_id"], row["seq"])).fetchall()
            for t, lang, metric, key in replay(summary.dialplan, earlier):
                _count(connection, t, summary, metric, key, lang=lang, everywhere=False)
        for metric, key in counted:
            _count(connection, row["t"], summary, metric, key)
        connection.execute(f"UPDATE calls SET {', '.join(c + ' = %s' for c in SUMMARY_COLUMNS)} WHERE call_id = %s",
                           (*summary.row(), row["call_id"]))
    elif op == "end":
        done = connection.execute("SELECT ended_at IS NOT NULL FROM calls WHERE call_id = %s",
                                  (row["call_id"],)).fetchone()
        summary = _summary(connection, row["call_id"])
        klass = summary.final_class(row.get("outcome") or "")
        connection.execute(
            "UPDATE calls SET ended_at = %(ended_at)s, outcome = %(outcome)s, end_reason = %(end_reason)s, "
            "duration_s = %(duration_s)s, recording = %(recording)s, dialplan = COALESCE(%(dialplan)s, dialplan), "
            "class = %(class)s WHERE call_id = %(call_id)s", {**row, "class": klass})
        if done is not None and not done[0] and klass in ABANDONED and summary.node:
            _count(connection, row["ended_at"], summary, "left", summary.node)
    elif op == "case":  # the whole case as the node has it now (voicebot/records/cases.py); a later write wins
        values = {name: row.get(name) for name in _CASE_COLUMNS}
        values["summary"] = json.dumps(values["summary"], ensure_ascii=False)
        changed = ", ".join(f"{name} = EXCLUDED.{name}" for name in _CASE_COLUMNS if name != "call_id")
        connection.execute(
            f"INSERT INTO cases (id, server_node, {', '.join(_CASE_COLUMNS)}) VALUES (%(id)s, %(server_node)s, "
            + ", ".join(f"%({name})s" for name in _CASE_COLUMNS).replace("%(summary)s", "%(summary)s::jsonb")
            + f") ON CONFLICT (id) DO UPDATE SET {changed} WHERE cases.updated_at <= EXCLUDED.updated_at",
            {**values, "id": row["id"], "server_node": node})
    else:
        raise ValueError(f"unknown outbox operation {op!r}")


class Shipper:
    """Forwards a node's SQLite outbox to PostgreSQL in a background thread (see the module docstring)."""

    def __init__(self, store: SqliteRecordStore, dsn: str, *, node: str, batch: int = 500,
                 idle_s: float = 0.2, max_backoff_s: float = 10.0) -> None:
        if not store.ship:
            raise ValueError("the record store must be opened with ship=True to feed PostgreSQL")
        self.store = store
        self.dsn = dsn
        self.node = node
        self.batch = batch
        self.idle_s = idle_s
        self.max_backoff_s = max_backoff_s
        self.shipped_total = 0
        self.failures = 0  # attempts that failed (database down, network, ...)
        self.connected = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="records-shipper", daemon=True)
        self._connection: Any = None
        self._warned_at = 0.0

    def start(self) -> None:
        self._thread.start()

    def kick(self) -> None:
        """New writes are waiting: ship them now rather than at the next idle tick."""
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ship what can be shipped within `timeout_s`, then stop (the rest stays in the outbox for next time)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)

    def ship_once(self) -> int:
        """Forward one batch; the number of writes shipped (0: nothing pending). Raises on database errors."""
        pending = self.store.pending(self.batch)
        if not pending:
            return 0
        connection = self._connect()
        with connection.transaction():
            for _, op, row in pending:
                _apply(connection, self.node, op, row)
        self.store.shipped(pending[-1][0])
        self.shipped_total += len(pending)
        return len(pending)

    def _connect(self) -> Any:
        import psycopg

        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self.dsn, autocommit=True, connect_timeout=3)
            migrate(self._connection)
            if not self.connected:
                log.info("records: shipping to PostgreSQL", extra={"fields": {"backlog": self.store.backlog()}})
            self.connected = True
        return self._connection

    def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                while self.ship_once():
                    pass
                backoff = 0.5
            except Exception as exc:  # noqa: BLE001 - any database or network failure: keep the outbox, retry
                self._lost(exc)
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            if self._stop.is_set():
                self._close()
                return
            self._wake.wait(self.idle_s)
            self._wake.clear()

    def _lost(self, exc: BaseException) -> None:
        self.failures += 1
        now = time.monotonic()
        if self.connected or now - self._warned_at >= 60:
            self._warned_at = now
            log.warning("records: PostgreSQL unreachable, keeping %d writes locally: %s", self.store.backlog(),
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        self.connected = False
        self._close()

    def _close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
            self._connection = None
