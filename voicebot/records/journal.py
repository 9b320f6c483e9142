"""Feed one call's events into the record store without ever costing the call: a failing store is logged once a
minute and the call goes on (the log line "call ended" still carries the whole record)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from voicebot.records.metrics import BotMetrics
from voicebot.records.postgres import Shipper
from voicebot.records.store import SqliteRecordStore

__all__ = ["CallJournal", "event_kind", "open_journal"]

log = logging.getLogger("voicebot.records")
_WARN_EVERY_S = 60.0


def event_kind(entry: Mapping[str, Any]) -> str:
    """A transcript entry's record kind: the named event of a system line (queue_joined, agent_answered,
    transferred), the dialplan event's name (node, slot, nomatch, ...), else who spoke (bot, caller, system)."""
    if entry.get("event"):
        return str(entry["event"])
    who = str(entry.get("who") or "event")
    if who == "event":
        return str(entry.get("text") or "event")
    return who


class CallJournal:
    """The server's door to the record store; every method swallows store failures after logging them."""

    def __init__(self, store: SqliteRecordStore | None) -> None:
        self.store = store
        self.metrics = BotMetrics()
        self._warned_at = 0.0
        self.failures = 0

    def _guard(self, what: str, work: Callable[[], Any]) -> None:
        if self.store is None:
            return
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - a full disk or a locked file must never cost the call
            self.failures += 1
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY_S:
                self._warned_at = now
                log.warning("call record store: %s failed: %s (%d failures so far)", what, exc, self.failures)

    def start(self, call_id: str, **fields: Any) -> None:
        self.metrics.started(call_id)
        self._guard("start", lambda: self.store.start_call(call_id, **fields))  # type: ignore[union-attr]

    def sink(self, call_id: str) -> Callable[[dict[str, Any]], None]:
        """A transcript sink: each (already redacted) entry becomes an event of the call's record."""
        def write(entry: dict[str, Any]) -> None:
            data = {k: v for k, v in entry.items() if k != "t"}
            self.metrics.event(call_id, event_kind(entry), data)
            self._guard("append", lambda: self.store.append(  # type: ignore[union-attr]
                call_id, event_kind(entry), data, t=entry.get("t")))
        return write

    def end(self, call_id: str, **fields: Any) -> None:
        self.metrics.ended(call_id, str(fields.get("outcome") or ""), (fields.get("extra") or {}).get("turns") or ())
        self._guard("end", lambda: self.store.end_call(call_id, **fields))  # type: ignore[union-attr]

    def close(self) -> None:
        if self.store is not None:
            self._guard("close", self.store.close)


def open_journal(config: Any, *, node: str) -> tuple[CallJournal, Shipper | None]:
    """The journal `records:` configures: SQLite alone, or SQLite feeding PostgreSQL (the DSN from the environment
    variable the config names: no secrets in files). Raises ValueError naming what is missing."""
    import os

    if not config.enabled:
        return CallJournal(None), None
    if config.store == "sqlite":
        return CallJournal(SqliteRecordStore(config.path)), None
    dsn = os.environ.get(config.postgres_dsn_env, "")
    if not dsn:
        raise ValueError(f"records.store is postgres but the environment variable {config.postgres_dsn_env} "
                         "(the PostgreSQL connection string) is not set")
    store = SqliteRecordStore(config.path, ship=True)
    return CallJournal(store), Shipper(store, dsn, node=node)
