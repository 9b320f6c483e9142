"""Feed one call's events into the record store without ever costing the call: a failing store is logged once a
minute and the call goes on (the log line "call ended" still carries the whole record)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from voicebot.calls.events import CallEnded, CallEvent, CallStarted, Observer, record_entry
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
    """The server's door to the record store. Writes run in order on one writer thread (a SQLite commit can take
    milliseconds on a busy disk: never on the event loop that paces the media); a `kill -9` loses at most the
    writes still queued, normally none or the last event. Store failures are logged, never raised into a call."""

    def __init__(self, store: SqliteRecordStore | None) -> None:
        self.store = store
        self.metrics = BotMetrics()
        self._warned_at = 0.0
        self.failures = 0
        self._queue: queue.SimpleQueue[tuple[str, Callable[[], Any]] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        if store is not None:
            self._writer = threading.Thread(target=self._write_all, name="call-records", daemon=True)
            self._writer.start()

    def _write_all(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            what, work = item
            try:
                work()
            except Exception as exc:  # noqa: BLE001 - a full disk or a locked file must never cost the call
                self.failures += 1
                now = time.monotonic()
                if now - self._warned_at >= _WARN_EVERY_S:
                    self._warned_at = now
                    log.warning("call record store: %s failed: %s (%d failures so far)", what, exc, self.failures)

    def _guard(self, what: str, work: Callable[[], Any]) -> None:
        if self._writer is not None:
            self._queue.put((what, work))

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything queued so far is written (tests, shutdown); False if it took longer."""
        if self._writer is None:
            return True
        done = threading.Event()
        self._queue.put(("flush", done.set))
        return done.wait(timeout_s)

    def start(self, call_id: str, **fields: Any) -> None:
        self.metrics.started(call_id)
        self._guard("start", lambda: self.store.start_call(call_id, **fields))  # type: ignore[union-attr]

    def sink(self, call_id: str) -> Callable[[dict[str, Any]], None]:
        """Each (already redacted) transcript entry given to the returned function becomes an event of the record."""
        def write(entry: dict[str, Any]) -> None:
            data = {k: v for k, v in entry.items() if k != "t"}
            self.metrics.event(call_id, event_kind(entry), data)
            self._guard("append", lambda: self.store.append(  # type: ignore[union-attr]
                call_id, event_kind(entry), data, t=entry.get("t")))
        return write

    def observer(self, call_id: str) -> Observer:
        """The call-record writer as an observer of the call's events (voicebot.calls.events): the start opens
        the record, each line, measurement and quality flag becomes an event, the end closes it."""
        write = self.sink(call_id)

        def observe(event: CallEvent) -> None:
            if isinstance(event, CallStarted):
                self.start(call_id, caller=event.caller, callee=event.callee, dialplan=event.dialplan,
                           channel=event.channel)
            elif isinstance(event, CallEnded):
                self.end(call_id, outcome=event.outcome, end_reason=event.end_reason, duration_s=event.duration_s,
                         dialplan=event.dialplan, recording=event.recording, extra=dict(event.extra))
            else:
                entry = record_entry(event)
                if entry is not None:
                    write(entry)

        return observe

    def append(self, call_id: str, kind: str, data: dict[str, Any]) -> None:
        """One event from outside the call's transcript (e.g. the agent's disposition), in order with the rest."""
        self._guard("append", lambda: self.store.append(call_id, kind, data))  # type: ignore[union-attr]

    def dialplan_of(self, call_id: str) -> str:
        """The dialplan a recorded call ran ("" if not recorded): a read of the store, a millisecond or so."""
        if self.store is None:
            return ""
        try:
            return self.store.dialplan_of(call_id)
        except Exception as exc:  # noqa: BLE001 - a locked or failing store costs the answer, never the call
            log.warning("call record store: dialplan lookup failed: %s", exc)
            return ""

    def end(self, call_id: str, **fields: Any) -> None:
        self.metrics.ended(call_id, str(fields.get("outcome") or ""), (fields.get("extra") or {}).get("turns") or ())
        self._guard("end", lambda: self.store.end_call(call_id, **fields))  # type: ignore[union-attr]

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then close the store."""
        if self._writer is None or self.store is None:
            return
        self._guard("close", self.store.close)
        self._queue.put(None)
        self._writer.join(timeout_s)


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
