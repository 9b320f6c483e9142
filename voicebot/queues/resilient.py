"""A Redis store that keeps the ACD running when Redis goes away, and reconciles when it comes back.

    store = ResilientStore.from_url("redis://127.0.0.1:6379/0", namespace="prod", node="node-a")
    store.mode            # "normal" | "degraded"

Normal mode: every call goes to Redis, and the state the last transaction committed (or the last load read) is
kept; it becomes the local copy when, on a connection error or timeout, the store turns *degraded*: it logs one
warning (namespace, node, Redis host:port, error type; never the URL), runs transactions
on the local copy and journals every pure `fn` that changed it, keeps contexts written meanwhile, and probes
Redis in the background (backoff 0.2 s doubling to 5 s). When Redis answers it *reconciles*, then logs it:

1. replays the journal in order with `RedisStore.transact` — each `fn` re-runs on the current shared state (they
   are pure and carry their own timestamps). A `fn` that now raises (an AcdError: e.g. the caller was meanwhile
   assigned by another node, the agent changed state there) is a conflict: the shared state wins, the conflict is
   logged and the operation dropped;
2. writes the contexts put meanwhile (with the TTL they have left), and restores every context this node still
   holds that Redis lost (a Redis restarted empty: agents' screen-pops would read ``context: null``); a context
   another node wrote meanwhile is kept;
3. puts back this node's callers that are waiting locally but are nowhere in Redis (an enqueue whose replay was
   refused, e.g. the queue filled up on other nodes): a caller on the line is never dropped from the queue.

If Redis came back empty (restarted without its data) the whole local copy is written back first, in one
transaction that only applies to an empty state, and the journal (already in that copy) is dropped.
Heartbeats that fail turn the store degraded too, so a dead Redis is reported once (a warning), not as an error
with a traceback on every heartbeat; :class:`StoreUnavailable` tells the caller it was already reported.

While degraded, `dispatching` is False: the ACD keeps callers waiting but makes no new assignment, since only
Redis can tell that no other node took the agent meanwhile. Assignments made before the outage go on (answers,
no-answers and hang-ups are journalled), and callers are served after the reconcile.
An operation whose connection broke during EXEC may have committed: its replay then fails as a conflict
(AlreadyQueued, UnknownAssignment) or repeats an idempotent change.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from voicebot.queues.state import (
    STATE_KINDS,
    AcdState,
    QueueEntry,
    decode_state,
    encode_state,
)
from voicebot.queues.store import Raw, RedisStore, StoreConflict, StoreUnavailable

__all__ = ["ReconcileReport", "ResilientStore", "StoreUnavailable", "missing_own_entries"]

log = logging.getLogger("voicebot.queues.store")

T = TypeVar("T")
Mode = Literal["normal", "degraded"]
CONTEXT_CACHE = 2048  # contexts kept locally to answer reads while degraded


def _down_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)


def _redis_errors() -> tuple[type[BaseException], ...]:
    """Errors after which a replayed operation is kept for the next try (Redis refused it, not the ACD)."""
    from redis.exceptions import RedisError

    return (RedisError, StoreConflict, *_down_errors())


def _is_empty(state: AcdState) -> bool:
    return not any(getattr(state, kind) for kind in STATE_KINDS)


def restore_transaction(raw: Raw) -> Callable[[AcdState], bool]:
    """A pure transaction: fill an *empty* shared state from a local copy; True if it did."""

    def restore(state: AcdState) -> bool:
        if not _is_empty(state):
            return False
        local = decode_state(copy.deepcopy(raw))
        for kind in STATE_KINDS:
            setattr(state, kind, getattr(local, kind))
        return True

    return restore


def missing_own_entries(local: AcdState, shared: AcdState, node: str) -> list[QueueEntry]:
    """This node's callers waiting in `local` whom `shared` has neither waiting nor with an agent. Pure.

    A *pending* callback for one of them does not count: during a long outage another node took this node for
    lost and turned its callers into callbacks (voicebot.queues.orphans), but the caller is still on the line.
    """
    known = set(shared.entries) | {a.call_id for a in shared.assignments.values()}
    return [entry for entry in local.entries.values() if entry.node == node and entry.call_id not in known]


def put_back_transaction(entries: Iterable[QueueEntry]) -> Callable[[AcdState], list[str]]:
    """A pure transaction: add back each entry the shared state still knows nothing of (checked inside)."""
    wanted = [asdict(entry) for entry in entries]

    def put_back(state: AcdState) -> list[str]:
        candidates = AcdState(entries={data["call_id"]: QueueEntry(**copy.deepcopy(data)) for data in wanted})
        added = []
        for entry in candidates.entries.values():
            if missing_own_entries(AcdState(entries={entry.call_id: entry}), state, entry.node):
                state.entries[entry.call_id] = entry
                added.append(entry.call_id)
                for task_id, task in list(state.callbacks.items()):  # the caller is here: no call back
                    if task.call_id == entry.call_id and task.state == "pending":
                        del state.callbacks[task_id]
        return added

    return put_back


@dataclass
class ReconcileReport:
    replayed: int = 0
    conflicts: list[str] = field(default_factory=list)
    contexts: int = 0
    put_back: list[str] = field(default_factory=list)
    restored_state: bool = False
    restored_contexts: int = 0


class ResilientStore:
    """The Store protocol over a RedisStore, degrading to a local copy while Redis is unreachable."""

    def __init__(self, remote: RedisStore, *, node: str, probe_min_s: float = 0.2, probe_max_s: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.remote = remote
        self.node = node
        self.probe_min_s = probe_min_s
        self.probe_max_s = probe_max_s
        self.clock = clock
        self.mode: Mode = "normal"
        self.outages = 0
        self.last_reconcile: ReconcileReport | None = None
        self._errors = _down_errors()
        self._raw: Raw = encode_state(AcdState())  # the local copy while degraded
        self._seen: AcdState | None = None  # the last state Redis gave (encoded into _raw only when degrading)
        self._journal: list[Callable[[AcdState], Any]] = []
        self._pending_contexts: dict[str, tuple[str, float]] = {}  # id -> (json, expires at)
        self._contexts: OrderedDict[str, tuple[str, float]] = OrderedDict()  # id -> (json, expires at)
        self._lock = asyncio.Lock()
        self._probe: asyncio.Task[None] | None = None
        self._since = 0.0

    @classmethod
    def from_url(cls, url: str, namespace: str = "default", *, node: str, socket_timeout_s: float = 2.0,
                 **kwargs: Any) -> ResilientStore:
        """A client that fails fast (one retry, bounded socket timeouts) so callers never wait on a dead Redis."""
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff

        client = redis.asyncio.Redis.from_url(
            url, decode_responses=True, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1))
        return cls(RedisStore(client, namespace), node=node, **kwargs)

    @property
    def degraded(self) -> bool:
        return self.mode == "degraded"

    @property
    def dispatching(self) -> bool:
        """Whether the ACD may make new assignments now (not while degraded)."""
        return not self.degraded

    @property
    def journal_length(self) -> int:
        return len(self._journal)

    # ------------------------------------------------------------------------------- Store protocol

    async def transact(self, fn: Callable[[AcdState], T]) -> T:
        while True:
            if not self.degraded:
                try:
                    return await self._remote_transact(fn)
                except self._errors as exc:
                    self._degrade(exc)
            async with self._lock:
                if self.degraded:
                    return self._local_transact(fn)

    async def load(self) -> AcdState:
        if not self.degraded:
            try:
                state = await self.remote.load()
            except self._errors as exc:
                self._degrade(exc)
            else:
                if not self.degraded:
                    self._seen = state
                return state
        return decode_state(self._raw)

    async def put_context(self, context_id: str, data: dict[str, Any], ttl_s: float = 86400.0) -> None:
        text = json.dumps(data)
        self._remember(context_id, text, self.clock() + ttl_s)
        if not self.degraded:
            try:
                await self.remote.put_context(context_id, data, ttl_s)
                return
            except self._errors as exc:
                self._degrade(exc)
        self._pending_contexts[context_id] = (text, self.clock() + ttl_s)

    async def get_context(self, context_id: str) -> dict[str, Any] | None:
        if not self.degraded:
            try:
                data = await self.remote.get_context(context_id)
            except self._errors as exc:
                self._degrade(exc)
            else:
                if data is not None and context_id not in self._contexts:
                    self._remember(context_id, json.dumps(data), self.clock() + 86400.0)
                return data
        cached = self._contexts.get(context_id)
        return None if cached is None else json.loads(cached[0])

    # Node heartbeats (voicebot.queues.liveness) go straight to Redis: a node that cannot reach it must not look alive.
    async def heartbeat(self, node: str, started_at: float, ttl_s: float, api_url: str | None = None) -> None:
        """Straight to Redis; a failure degrades the store (one warning) and raises StoreUnavailable."""
        try:
            await self.remote.heartbeat(node, started_at, ttl_s, api_url)
        except self._errors as exc:
            self._degrade(exc)
            raise StoreUnavailable(f"Redis unreachable: {type(exc).__name__}") from None

    async def live_nodes(self) -> dict[str, float]:
        return await self.remote.live_nodes()

    async def retire(self, node: str) -> None:
        await self.remote.retire(node)

    async def node_api_url(self, node: str) -> str | None:
        return await self.remote.node_api_url(node)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
        if self._journal or self._pending_contexts:
            log.error("queue store closed while degraded: local changes not written to Redis",
                      extra={"fields": {"namespace": self.remote.namespace, "journal": len(self._journal),
                                        "contexts": len(self._pending_contexts)}})
        try:
            await self.remote.close()
        except self._errors:
            pass

    # ------------------------------------------------------------------------------------- internals

    async def _remote_transact(self, fn: Callable[[AcdState], T]) -> T:
        seen: list[AcdState] = []

        def run(state: AcdState) -> T:
            result = fn(state)
            seen[:] = [state]
            return result

        result = await self.remote.transact(run)
        if not self.degraded and seen:
            self._seen = seen[0]
        return result

    def _local_transact(self, fn: Callable[[AcdState], T]) -> T:
        state = decode_state(self._raw)
        result = fn(state)  # an exception leaves the local copy untouched and journals nothing
        after = encode_state(state)
        if after != self._raw:
            self._raw = after
            self._journal.append(fn)
        return result

    def _remember(self, context_id: str, text: str, expires: float) -> None:
        self._contexts[context_id] = (text, expires)
        self._contexts.move_to_end(context_id)
        while len(self._contexts) > CONTEXT_CACHE:
            self._contexts.popitem(last=False)

    def _degrade(self, exc: BaseException) -> None:
        if self.degraded:
            return
        if self._seen is not None:  # states are shared read-only once committed or loaded: copy it now
            self._raw = encode_state(self._seen)
        self.mode = "degraded"
        self.outages += 1
        self._since = time.monotonic()
        pool = getattr(getattr(self.remote, "_redis", None), "connection_pool", None)
        kwargs = getattr(pool, "connection_kwargs", {})  # host and port only: no password, no URL
        log.warning("queue store degraded: Redis unreachable, callers keep waiting on local state",
                    extra={"fields": {"namespace": self.remote.namespace, "node": self.node,
                                      "redis": f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}",
                                      "error": type(exc).__name__}})
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._probe_until_back())

    async def _probe_until_back(self) -> None:
        delay = self.probe_min_s
        while self.degraded:
            await asyncio.sleep(delay)
            try:
                if await self.reconcile():
                    return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep probing whatever went wrong
                log.exception("queue store reconcile failed; retrying")
            delay = min(delay * 2, self.probe_max_s)

    async def reconcile(self) -> bool:
        """Try to write local changes back to Redis; True (and normal mode) once everything is there."""
        async with self._lock:
            if not self.degraded:
                return True
            report = ReconcileReport()
            try:
                if _is_empty(await self.remote.load()) and not _is_empty(decode_state(self._raw)):
                    report.restored_state = await self.remote.transact(restore_transaction(self._raw))
                    if report.restored_state:
                        self._journal.clear()  # its effects are in the restored copy
                while self._journal:
                    fn = self._journal[0]
                    try:
                        await self.remote.transact(fn)
                        report.replayed += 1
                    except _redis_errors():
                        raise
                    except Exception as exc:  # noqa: BLE001 - the shared state wins; say what was dropped
                        report.conflicts.append(f"{type(exc).__name__}: {exc}")
                        log.warning("queue store reconcile conflict: operation dropped, Redis state kept",
                                    extra={"fields": {"namespace": self.remote.namespace,
                                                      "error": type(exc).__name__, "reason": str(exc)}})
                    self._journal.pop(0)
                now = self.clock()
                for context_id, (text, expires) in list(self._pending_contexts.items()):
                    if expires > now:
                        await self.remote.put_context(context_id, json.loads(text), expires - now)
                        report.contexts += 1
                    del self._pending_contexts[context_id]
                for context_id, (text, expires) in list(self._contexts.items()):
                    if expires > now and await self.remote.restore_context(context_id, text, expires - now):
                        report.restored_contexts += 1
                local = decode_state(self._raw)
                missing = missing_own_entries(local, await self.remote.load(), self.node)
                if missing:
                    report.put_back = await self.remote.transact(put_back_transaction(missing))
                self._seen = await self.remote.load()
            except _redis_errors() as exc:
                log.debug("queue store still degraded", extra={"fields": {"error": type(exc).__name__}})
                return False
            self.mode = "normal"
            self.last_reconcile = report
            log.info("queue store back to normal: Redis reconciled",
                     extra={"fields": {"namespace": self.remote.namespace, "node": self.node,
                                       "outage_s": round(time.monotonic() - self._since, 1),
                                       "replayed": report.replayed, "conflicts": len(report.conflicts),
                                       "contexts": report.contexts, "put_back": report.put_back,
                                       "restored_state": report.restored_state,
                                       "restored_contexts": report.restored_contexts}})
            return True
