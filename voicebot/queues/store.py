"""Where ACD state lives: in memory (embedded default) or in Redis (shared by nodes, survives restarts).

    store = MemoryStore()  |  RedisStore.from_url("redis://127.0.0.1:6379/0", namespace="prod")
    result = await store.transact(lambda state: Acd(agents, queues, state).enqueue(...))

`transact(fn)` runs `fn` on a fresh copy of the state and commits what it changed atomically; `fn` must be
pure (it may run again when another node changed the state meanwhile). Redis keys are
`voicebot:<namespace>:<kind>` hashes (entries, agents, assignments, callbacks, stats) of JSON records, and
`voicebot:<namespace>:context:<id>` strings with a TTL. Optimistic WATCH/MULTI/EXEC makes every transaction
all-or-nothing across nodes: of two nodes racing for one agent, exactly one commits.

Node heartbeats (`heartbeat`, `live_nodes`, `retire`): each node renews `voicebot:<namespace>:node:<id>` (its
process start time) with a TTL; a node whose key expired is lost, and survivors recover its calls
(voicebot.queues.orphans). The heartbeat also carries the node's advertised API URL (`node_api_url`), where other
nodes forward a browser agent's answer for a call this node holds.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from voicebot.queues.state import STATE_KINDS, AcdState, decode_state, encode_state

__all__ = ["MemoryStore", "RedisStore", "Store", "StoreConflict"]

T = TypeVar("T")
Raw = dict[str, dict[str, str]]


class StoreUnavailable(Exception):
    """The shared store is unreachable and has already said so (degraded): no need to log it again."""


class StoreConflict(RuntimeError):
    """A Redis transaction kept losing races with other nodes and gave up."""


class Store(Protocol):
    async def transact(self, fn: Callable[[AcdState], T]) -> T: ...

    async def load(self) -> AcdState: ...

    async def put_context(self, context_id: str, data: dict[str, Any], ttl_s: float = 86400.0) -> None: ...

    async def get_context(self, context_id: str) -> dict[str, Any] | None: ...

    async def close(self) -> None: ...


def _diff(before: Raw, after: Raw) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    """Fields to set and fields to delete, per kind."""
    sets: dict[str, dict[str, str]] = {}
    deletes: dict[str, list[str]] = {}
    for kind in STATE_KINDS:
        old, new = before.get(kind, {}), after.get(kind, {})
        changed = {key: value for key, value in new.items() if old.get(key) != value}
        gone = [key for key in old if key not in new]
        if changed:
            sets[kind] = changed
        if gone:
            deletes[kind] = gone
    return sets, deletes


class MemoryStore:
    """State in this process only: the embedded default, and the reference the Redis store must match."""

    def __init__(self) -> None:
        self._raw: Raw = {kind: {} for kind in STATE_KINDS}
        self._contexts: dict[str, str] = {}
        self._nodes: dict[str, tuple[float, float]] = {}  # node -> (started_at, alive until, monotonic)
        self._urls: dict[str, str] = {}  # node -> advertised API URL
        self._lock = asyncio.Lock()
        self.version = 0  # bumped by every transaction that changed the state (the ACD skips idle steps)

    async def transact(self, fn: Callable[[AcdState], T]) -> T:
        async with self._lock:
            state = decode_state(self._raw)
            result = fn(state)  # an exception leaves the stored state untouched
            sets, deletes = _diff(self._raw, encode_state(state))
            for kind, fields in sets.items():
                self._raw[kind].update(fields)
            for kind, keys in deletes.items():
                for key in keys:
                    self._raw[kind].pop(key, None)
            if sets or deletes:
                self.version += 1
            return result

    async def load(self) -> AcdState:
        return decode_state(self._raw)

    async def put_context(self, context_id: str, data: dict[str, Any], ttl_s: float = 86400.0) -> None:
        self._contexts[context_id] = json.dumps(data)

    async def get_context(self, context_id: str) -> dict[str, Any] | None:
        text = self._contexts.get(context_id)
        return None if text is None else json.loads(text)

    async def heartbeat(self, node: str, started_at: float, ttl_s: float, api_url: str | None = None) -> None:
        """`node` (its process started at `started_at`, API at `api_url`) is alive for the next `ttl_s` seconds."""
        self._nodes[node] = (started_at, time.monotonic() + ttl_s)
        if api_url:
            self._urls[node] = api_url
        else:
            self._urls.pop(node, None)

    async def node_api_url(self, node: str) -> str | None:
        """The API URL a live node advertises, or None (unknown, lost, or advertising none)."""
        return self._urls.get(node) if node in await self.live_nodes() else None

    async def live_nodes(self) -> dict[str, float]:
        """Nodes with an unexpired heartbeat -> their process start time."""
        now = time.monotonic()
        return {node: started for node, (started, until) in self._nodes.items() if until > now}

    async def retire(self, node: str) -> None:
        """`node` stops cleanly: its heartbeat goes at once, so survivors take over without waiting for the TTL."""
        self._nodes.pop(node, None)

    async def close(self) -> None:
        return None


class RedisStore:
    """State in Redis under `voicebot:<namespace>:...`, shared by every node using the same namespace."""

    def __init__(self, client: Any, namespace: str = "default", *, max_retries: int = 200) -> None:
        if not namespace or ":" in namespace:
            raise ValueError(f"namespace must be non-empty text without ':', got {namespace!r}")
        self._redis = client
        self.namespace = namespace
        self._max_retries = max_retries

    @classmethod
    def from_url(cls, url: str, namespace: str = "default") -> RedisStore:
        import redis.asyncio

        return cls(redis.asyncio.Redis.from_url(url, decode_responses=True), namespace)

    def key(self, *parts: str) -> str:
        return ":".join(("voicebot", self.namespace, *parts))

    async def _read(self, client: Any) -> Raw:
        raw: Raw = {}
        for kind in STATE_KINDS:
            raw[kind] = await client.hgetall(self.key(kind))
        return raw

    async def transact(self, fn: Callable[[AcdState], T]) -> T:
        from redis.exceptions import WatchError

        keys = [self.key(kind) for kind in STATE_KINDS]
        for attempt in range(self._max_retries):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*keys)
                    before = await self._read(pipe)
                    state = decode_state(before)
                    result = fn(state)
                    sets, deletes = _diff(before, encode_state(state))
                    pipe.multi()
                    for kind, fields in sets.items():
                        pipe.hset(self.key(kind), mapping=fields)
                    for kind, names in deletes.items():
                        pipe.hdel(self.key(kind), *names)
                    if not sets and not deletes:
                        pipe.exists(keys[0])  # an empty EXEC still fails if a watched key changed
                    await pipe.execute()
                    return result
                except WatchError:
                    await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise StoreConflict(f"gave up after {self._max_retries} conflicting Redis transactions")

    async def load(self) -> AcdState:
        return decode_state(await self._read(self._redis))

    async def put_context(self, context_id: str, data: dict[str, Any], ttl_s: float = 86400.0) -> None:
        await self._redis.set(self.key("context", context_id), json.dumps(data), ex=max(1, int(ttl_s)))

    async def get_context(self, context_id: str) -> dict[str, Any] | None:
        text = await self._redis.get(self.key("context", context_id))
        return None if text is None else json.loads(text)

    async def restore_context(self, context_id: str, text: str, ttl_s: float) -> bool:
        """Write a context only if Redis has none under its id (a newer one from another node wins)."""
        return bool(await self._redis.set(self.key("context", context_id), text, ex=max(1, int(ttl_s)), nx=True))

    async def heartbeat(self, node: str, started_at: float, ttl_s: float, api_url: str | None = None) -> None:
        """`node` (its process started at `started_at`, API at `api_url`) is alive for the next `ttl_s` seconds."""
        record: dict[str, Any] = {"started_at": started_at}
        if api_url:
            record["api_url"] = api_url
        await self._redis.set(self.key("node", node), json.dumps(record), px=max(1, int(ttl_s * 1000)))

    async def node_api_url(self, node: str) -> str | None:
        """The API URL a live node advertises, or None (unknown, lost, or advertising none)."""
        text = await self._redis.get(self.key("node", node))
        url = json.loads(text).get("api_url") if text else None
        return url if isinstance(url, str) and url else None

    async def live_nodes(self) -> dict[str, float]:
        """Nodes with an unexpired heartbeat -> their process start time."""
        prefix = self.key("node", "")
        keys = [key async for key in self._redis.scan_iter(match=prefix + "*", count=500)]
        values = await self._redis.mget(keys) if keys else []
        live: dict[str, float] = {}
        for key, text in zip(keys, values):
            if text is not None:  # expired between SCAN and MGET
                live[key[len(prefix):]] = float(json.loads(text)["started_at"])
        return live

    async def retire(self, node: str) -> None:
        """`node` stops cleanly: its heartbeat goes at once, so survivors take over without waiting for the TTL."""
        await self._redis.delete(self.key("node", node))

    async def clear(self) -> None:
        """Delete every key of this namespace (tests, `voicebot queues reset`)."""
        async for key in self._redis.scan_iter(match=self.key("*")):
            await self._redis.delete(key)

    async def close(self) -> None:
        await self._redis.aclose()
