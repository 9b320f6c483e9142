"""Cases (tickets) that follow calls (issue 19): one per call that reached an agent or ended unresolved, kept in
the call record database (table `cases`, created beside the call tables), listed and updated through the API.

    store = CaseStore("var/records/calls.sqlite3")
    case = store.create_for_call(call_id, summary, industry="finance", owner="a1", caller="+15551234567")
    changes = validate_patch(body, industry=case["industry"], dispositions=codes, now=time.time())  # CaseError
    store.update(case["id"], changes)

`validate_patch` is pure; the store is SQLite (WAL: the call writer and API readers never block each other). With
PostgreSQL (`ship=True`), each create/update also queues the whole case in the record outbox, in the same
transaction, for voicebot/records/postgres.py to upsert (migration 3).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from voicebot.records.aftercall import AfterCallSummary
from voicebot.records.dispositions import Dispositions
from voicebot.records.store import SCHEMA

__all__ = ["CASE_SCHEMA", "STATUSES", "CaseError", "CaseStore", "validate_patch"]

STATUSES = ("open", "pending", "closed")
_FIELDS = ("status", "owner", "disposition", "follow_up_at", "note")
_MAX_FOLLOW_UP_S = 90 * 86400
CASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    status TEXT NOT NULL,
    owner TEXT,
    industry TEXT NOT NULL DEFAULT '',
    disposition TEXT,
    follow_up_at REAL,
    callback_number TEXT,
    queue TEXT,
    note TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cases_status ON cases (status, updated_at);
"""


class CaseError(ValueError):
    """A case change that cannot be made; the message says which field and why."""


def validate_patch(body: Any, *, industry: str, dispositions: Dispositions, now: float,
                   agents: frozenset[str] | None = None) -> dict[str, Any]:
    """The changes a PATCH body asks for, checked (CaseError naming the field otherwise). Pure."""
    if not isinstance(body, Mapping) or not body:
        raise CaseError(f"send a JSON object with one or more of: {', '.join(_FIELDS)}")
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise CaseError(f"unknown field(s) {', '.join(map(repr, unknown))}; a case has {', '.join(_FIELDS)}")
    changes: dict[str, Any] = {}
    if "status" in body:
        if body["status"] not in STATUSES:
            raise CaseError(f"status must be one of {', '.join(STATUSES)} (got {body['status']!r})")
        changes["status"] = body["status"]
    if "owner" in body:
        owner = body["owner"]
        if owner is not None and (not isinstance(owner, str) or (agents is not None and owner not in agents)):
            raise CaseError(f"owner must be a configured agent id or null (got {owner!r})")
        changes["owner"] = owner
    if "disposition" in body:
        code = body["disposition"]
        if not isinstance(code, str) or dispositions.lookup(industry, code) is None:
            offered = ", ".join(d.code for d in dispositions.for_industry(industry))
            raise CaseError(f"disposition {code!r} is not a code for {industry or 'this industry'}; use one of "
                            f"{offered}")
        changes["disposition"] = code
    if "follow_up_at" in body:
        at = body["follow_up_at"]
        if at is not None:
            if isinstance(at, bool) or not isinstance(at, (int, float)):
                raise CaseError("follow_up_at must be a time in epoch seconds (or null to cancel)")
            if not now < at <= now + _MAX_FOLLOW_UP_S:
                raise CaseError("follow_up_at must be in the future and within 90 days")
            changes["status"] = changes.get("status", "pending")
        changes["follow_up_at"] = at
    if "note" in body:
        if not isinstance(body["note"], str) or len(body["note"]) > 2000:
            raise CaseError("note must be text of at most 2000 characters")
        changes["note"] = body["note"]
    return changes


class CaseStore:
    """Cases in the call record database; safe to share between threads."""

    def __init__(self, path: str | Path, *, ship: bool = False) -> None:
        self.path = Path(path)
        self.ship = ship
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA + CASE_SCHEMA)  # the call tables too: cases are read beside them
        self._db.commit()
        self._lock = threading.Lock()

    def _row(self, cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
        names = [d[0] for d in cursor.description]
        rows = []
        for values in cursor.fetchall():
            row = dict(zip(names, values))
            row["summary"] = json.loads(row["summary"])
            rows.append(row)
        return rows

    def create_for_call(self, call_id: str, summary: AfterCallSummary, *, industry: str, owner: str | None,
                        caller: str = "", queue: str | None = None, now: float | None = None,
                        status: str = "open") -> dict[str, Any] | None:
        """Open the call's case (None when it already has one)."""
        when = now if now is not None else time.time()
        case_id = f"case-{secrets.token_hex(6)}"
        with self._lock, self._db:
            done = self._db.execute(
                "INSERT OR IGNORE INTO cases (id, call_id, created_at, updated_at, status, owner, industry, "
                "disposition, callback_number, queue, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (case_id, call_id, when, when, status, owner, industry, summary.disposition or None,
                 caller or None, queue, json.dumps(summary.as_dict(), ensure_ascii=False)))
            if done.rowcount:
                self._outbox(case_id)
        return self.get(case_id) if done.rowcount else None

    def _outbox(self, case_id: str) -> None:
        """Queue the case as it is now for PostgreSQL (inside the caller's transaction)."""
        if self.ship:
            rows = self._row(self._db.execute("SELECT * FROM cases WHERE id = ?", (case_id,)))
            if not rows:
                return
            self._db.execute("INSERT INTO outbox (op, payload) VALUES ('case', ?)",
                             (json.dumps(rows[0], ensure_ascii=False),))

    def get(self, case_id: str) -> dict[str, Any] | None:
        with self._lock:
            rows = self._row(self._db.execute("SELECT * FROM cases WHERE id = ?", (case_id,)))
        return rows[0] if rows else None

    def by_call(self, call_id: str) -> dict[str, Any] | None:
        with self._lock:
            rows = self._row(self._db.execute("SELECT * FROM cases WHERE call_id = ?", (call_id,)))
        return rows[0] if rows else None

    def find(self, *, status: str | None = None, owner: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM cases WHERE 1 = 1", list[str]()
        if status is not None:
            query, args = query + " AND status = ?", [*args, status]
        if owner is not None:
            query, args = query + " AND owner = ?", [*args, owner]
        with self._lock:
            return self._row(self._db.execute(query + " ORDER BY updated_at DESC LIMIT ?", (*args, limit)))

    def update(self, case_id: str, changes: Mapping[str, Any], *, now: float | None = None) -> dict[str, Any] | None:
        """Apply validated `changes` (validate_patch); the case after, or None when there is no such case."""
        fields = {k: v for k, v in changes.items() if k in _FIELDS}
        sets = ", ".join(f"{name} = :{name}" for name in fields)
        with self._lock, self._db:
            self._db.execute(f"UPDATE cases SET {sets + ', ' if sets else ''}updated_at = :updated_at WHERE id = :id",
                             {**fields, "updated_at": now if now is not None else time.time(), "id": case_id})
            self._outbox(case_id)
        return self.get(case_id)

    def call(self, call_id: str) -> tuple[dict[str, Any] | None, list[tuple[str, dict[str, Any]]]]:
        """A call's row and its events (kind, data) from the record tables in the same file."""
        with self._lock:
            cursor = self._db.execute("SELECT call_id, dialplan, caller, outcome, lang FROM calls WHERE call_id = ?",
                                      (call_id,))
            row = cursor.fetchone()
            events = self._db.execute("SELECT kind, data FROM call_events WHERE call_id = ? ORDER BY seq",
                                      (call_id,)).fetchall()
        names = ("call_id", "dialplan", "caller", "outcome", "lang")
        return (dict(zip(names, row)) if row else None), [(kind, json.loads(data)) for kind, data in events]

    def close(self) -> None:
        with self._lock:
            self._db.close()
