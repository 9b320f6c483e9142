"""Node liveness for the shared ACD: this node's heartbeat, and recovery of the calls of nodes that were lost.

    liveness = NodeLiveness(service, heartbeat_s=2, ttl_s=6, callback_allowed=("+*",))
    service.liveness = liveness          # AcdService.run() calls liveness.tick() every loop step
    await liveness.retire()              # clean stop: survivors take over at once

Each tick renews the heartbeat every `heartbeat_s` (TTL `ttl_s`), and looks for orphans (voicebot.queues.orphans)
once this node's own heartbeat has been renewed without a break for `ttl_s`: after a Redis outage every key has
expired, and a node must not judge others dead before they had the time to beat again. The recovery runs in one
store transaction (exactly once across nodes); the surviving node then writes a call record for each lost call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from voicebot.queues.acd import Acd
from voicebot.queues.callbacks import InvalidCallbackNumber, confirm_number
from voicebot.queues.orphans import LostCall, find_orphans, recover

if TYPE_CHECKING:
    from voicebot.queues.service import AcdService

__all__ = ["NodeLiveness", "node_registry"]

log = logging.getLogger("voicebot.queues.liveness")


def node_registry(store: Any) -> Any | None:
    """`store` when it keeps node heartbeats (MemoryStore, RedisStore, ResilientStore), else None."""
    if all(hasattr(store, name) for name in ("heartbeat", "live_nodes", "retire")):
        return store
    return None


class NodeLiveness:
    def __init__(self, service: AcdService, *, heartbeat_s: float = 2.0, ttl_s: float = 6.0,
                 callback_allowed: Sequence[str] = ("*",)) -> None:
        if not 0 < heartbeat_s < ttl_s:
            raise ValueError(f"heartbeat_s ({heartbeat_s}) must be positive and below the TTL ({ttl_s})")
        registry = node_registry(service.store)
        if registry is None:
            raise ValueError(f"{type(service.store).__name__} keeps no node heartbeats")
        self.service = service
        self.registry = registry
        self.heartbeat_s = heartbeat_s
        self.ttl_s = ttl_s
        self.callback_allowed = tuple(callback_allowed)
        self.started_at = service.clock()  # this process: records older than it on our node are not ours
        self._next_beat = 0.0
        self._beating_since: float | None = None
        self.recovered: list[LostCall] = []  # by this node, for diagnosis
        self.api_url: str | None = None  # advertised in the heartbeat: other nodes forward browser answers there

    def advertise(self, api_url: str) -> None:
        """Publish this node's API URL with every heartbeat from the next tick on (which beats at once)."""
        self.api_url = api_url
        self._next_beat = 0.0
        self.service.wake()

    async def tick(self) -> list[LostCall]:
        """Renew the heartbeat when due, then recover lost nodes' calls; store errors propagate (logged by run)."""
        now = self.service.clock()
        if now < self._next_beat:
            return []
        self._next_beat = now + self.heartbeat_s
        try:
            await self.registry.heartbeat(self.service.node, self.started_at, self.ttl_s, self.api_url)
        except Exception:
            self._beating_since = None
            raise
        if self._beating_since is None:
            self._beating_since = now
        if now - self._beating_since < self.ttl_s or not getattr(self.service.store, "dispatching", True):
            return []
        return await self.recover()

    async def recover(self) -> list[LostCall]:
        """Recover the calls of every lost node (one transaction), write their call records; what was recovered."""
        service = self.service
        live = await self.registry.live_nodes()
        live[service.node] = self.started_at
        seen_at = service.clock()
        state = await service.store.load()
        orphans = find_orphans(state, live, seen_at)
        if not orphans:
            return []
        numbers = {call_id: await self._callback_number(call_id) for call_id in orphans.call_ids(state)}
        lost: list[LostCall] = await service.store.transact(
            lambda fresh: recover(Acd(service.agents_config, service.queues_config, fresh),
                                  find_orphans(fresh, live, seen_at).within(orphans), seen_at, numbers,
                                  service.node))
        for call in lost:
            await self._record(call)
        self.recovered += lost
        if lost or orphans.callbacks:
            service.wake()  # a re-offered callback may have a free agent now
        return lost

    async def retire(self) -> None:
        """This node stops cleanly: drop its heartbeat so survivors take over its callbacks at once."""
        await self.registry.retire(self.service.node)

    async def _callback_number(self, call_id: str) -> str | None:
        """The number the caller's node saved for a callback, if the callback policy here still allows it."""
        alias = await self.service.store.get_context("call:" + call_id)
        number = alias.get("callback_number") if alias else None
        if not number:
            return None
        try:
            return confirm_number(str(number), None, self.callback_allowed)
        except InvalidCallbackNumber:
            return None

    async def _record(self, call: LostCall) -> None:
        """The lost call's record, written by this (surviving) node: its node cannot write it any more."""
        context = await self.service.store.get_context(call.context_id) if call.context_id else None
        context = context or {}
        log.info("call ended", extra={"fields": {
            "call_id": call.call_id, "from": context.get("caller", ""), "outcome": call.outcome,
            "queue": call.queue, "waited_s": round(call.waited_s, 2), "context_id": call.context_id,
            "callback": call.callback, "lost_node": call.node, "recovered_by": self.service.node,
            "transcript": context.get("transcript", []), "end_reason": "node lost"}})
