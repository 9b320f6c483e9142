"""The ACD as a service: the pure `Acd` run inside store transactions, plus a loop that applies timers,
dispatches waiting callers to free agents and tells subscribers what happened (on every node alike).

    service = AcdService(store, agents_config, queues_config, node="node-a")
    service.subscribe(on_event)          # AssignmentOffered / AgentChanged / MaxWaitReached / Overflowed
    task = asyncio.create_task(service.run())
    await service.enqueue(call_id, "cards", ["lang:en-US"], priority=0, context_id=ctx.context_id)

Assignments and agent changes are detected by comparing snapshots of the shared state, so a caller enqueued
on node A and an agent freed on node B produce an AssignmentOffered on both nodes; only the node named in
`assignment.node` (the one holding the caller's call) rings the agent.

Announcements read one shared QueueSnapshot (positions and staffing indexed once), not the whole state per
caller: the state this service's latest transaction committed, or loaded again once the store may have changed
since (a MemoryStore tells by its version; a shared store, changed by other nodes, when the snapshot is older than
`snapshot_max_age_s`). The loop's step skips its transaction when the MemoryStore is unchanged and nothing is due.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from voicebot.queues.acd import Acd, MaxWaitReached, Overflowed, Position, QueueEvent, Released
from voicebot.queues.callbacks import CallbackTask
from voicebot.queues.store import StoreUnavailable
from voicebot.queues.context import CallContextRecord
from voicebot.queues.ewt import Ewt, announce, estimate
from voicebot.queues.models import AgentConfig, AgentsConfig, QueuesConfig
from voicebot.queues.snapshot import QueueSnapshot
from voicebot.queues.state import AcdState, AgentStatus, Assignment
from voicebot.queues.store import Store

if TYPE_CHECKING:
    from voicebot.queues.liveness import NodeLiveness

_T = TypeVar("_T")

__all__ = ["AcdService", "AgentChanged", "AssignmentOffered", "ServiceEvent"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AssignmentOffered:
    """Ring `agent` for `assignment` (a waiting caller, or a callback to dial) — if assignment.node is yours."""

    assignment: Assignment
    agent: AgentConfig


@dataclass(frozen=True)
class AgentChanged:
    agent_id: str
    state: str
    assignment_id: str | None
    reason: str | None = None  # "no_answer": the ACD set the agent not-ready (supervisors are told)
    consecutive_no_answers: int = 0


ServiceEvent = AssignmentOffered | AgentChanged | MaxWaitReached | Overflowed
Listener = Callable[[ServiceEvent], Awaitable[None] | None]


class AcdService:
    def __init__(
        self,
        store: Store,
        agents: AgentsConfig,
        queues: QueuesConfig,
        *,
        node: str = "local",
        clock: Callable[[], float] = time.time,
        poll_s: float = 0.25,
        snapshot_max_age_s: float = 1.0,
    ) -> None:
        self.store = store
        self.agents_config = agents
        self.queues_config = queues
        self.agents = agents.by_id()
        self.node = node
        self.clock = clock
        self.poll_s = poll_s
        self._listeners: list[Listener] = []
        self._seen_assignments: set[str] = set()
        self._seen_agents: dict[str, tuple[str, str | None, str | None]] = {}
        self._seen_max_wait: set[str] = set()
        self._publish_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self.snapshot_max_age_s = snapshot_max_age_s
        self._stamps = 0  # transactions started here, in order; the committed one's stamp orders its state
        self._committed = 0  # stamp of the latest transaction known committed
        # (stamp, taken at, store version, snapshot) of the state announcements are read from
        self._announce_from: tuple[int, float, int | None, QueueSnapshot] | None = None
        self._last_commit: tuple[int, AcdState] | None = None  # (store version, state) after this service's last commit
        self.liveness: NodeLiveness | None = None  # heartbeat + lost-node recovery (shared stores; set by the server)

    # ------------------------------------------------------------------------------------ plumbing

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` for every ServiceEvent; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def _apply(self, operation: Callable[[Acd, float], _T]) -> _T:
        result, _state = await self._apply_with_state(operation)
        return result

    async def _apply_with_state(self, operation: Callable[[Acd, float], _T]) -> tuple[_T, AcdState]:
        """Run `operation` in a transaction; also returns the state it committed (not to be mutated)."""
        now = self.clock()
        stamp = 0

        def run(state: AcdState) -> tuple[_T, AcdState]:
            nonlocal stamp
            self._stamps += 1
            stamp = self._stamps  # the attempt that commits is the last to run: its stamp orders the commit
            return operation(Acd(self.agents_config, self.queues_config, state), now), state

        try:
            result, state = await self.store.transact(run)
        finally:
            self._committed = max(self._committed, stamp)  # a failed attempt may still have been retried
        version = getattr(self.store, "version", None)  # read right after the commit (no await in between)
        self._last_commit = None if version is None else (version, state)
        self._keep_for_announcements(stamp, version, state)
        return result, state

    def _keep_for_announcements(self, stamp: int, version: int | None, state: AcdState) -> None:
        current = self._announce_from
        if current is None or stamp >= current[0]:
            snapshot = QueueSnapshot(self.agents_config, self.queues_config, state)
            self._announce_from = (stamp, self.clock(), version, snapshot)

    async def _announcement_snapshot(self) -> QueueSnapshot:
        """The shared snapshot, reloaded when a later transaction committed or the state may have changed since:
        the store's version moved (MemoryStore), or, for a store without one, it is older than the max age."""
        current = self._announce_from
        if current is not None and current[0] >= self._committed:
            stamp, taken_at, version, snapshot = current
            if version is not None and version == getattr(self.store, "version", None):
                return snapshot
            if version is None and 0 <= self.clock() - taken_at < self.snapshot_max_age_s:
                return snapshot
        stamp = self._committed  # the state loaded now includes at least this transaction
        version = getattr(self.store, "version", None)  # the load below does not wait for a MemoryStore
        state = await self.store.load()
        snapshot = QueueSnapshot(self.agents_config, self.queues_config, state)
        self._keep_for_announcements_loaded(stamp, version, snapshot)
        return snapshot

    def _keep_for_announcements_loaded(self, stamp: int, version: int | None, snapshot: QueueSnapshot) -> None:
        if self._announce_from is None or stamp >= self._announce_from[0]:
            self._announce_from = (stamp, self.clock(), version, snapshot)

    async def _apply_and_dispatch(self, operation: Callable[[Acd, float], _T]) -> _T:
        result = await self._apply(operation)
        await self.step()
        return result

    # ------------------------------------------------------------------------------------- callers

    async def enqueue(
        self,
        call_id: str,
        queue: str,
        skills: list[str] | tuple[str, ...] = (),
        priority: int = 0,
        context_id: str = "",
        flags: tuple[str, ...] = (),
    ) -> Position:
        """Queue a caller (raises QueueFull/QueueClosed/UnknownQueue/AlreadyQueued/ValueError); dispatches at once."""
        return await self._apply_and_dispatch(
            lambda acd, now: acd.enqueue(call_id, queue, list(skills), priority, context_id, now, node=self.node, flags=flags)
        )

    async def position(self, call_id: str) -> Position | None:
        state = await self.store.load()
        return Acd(self.agents_config, self.queues_config, state).position(call_id, self.clock())

    async def ewt(self, queue: str, position: int | None = None, state: AcdState | None = None) -> Ewt | None:
        """Estimated wait in `queue` at `position` (default: a caller joining now)."""
        state = state if state is not None else await self.store.load()
        acd = Acd(self.agents_config, self.queues_config, state)
        if position is None:
            position = len(acd.positions(queue, self.clock())) + 1
        staffed, available = acd.staffed(queue)
        stats = state.stats.get(queue)
        if stats is None:
            return estimate(position, staffed, available, None, 0)
        return estimate(position, staffed, available, stats.aht_s, stats.handled, stats.patience_rate)

    async def announcement(self, call_id: str, lang: str = "en-US") -> tuple[Position, Ewt | None, str] | None:
        """(position, ewt, sentence to speak) for a waiting caller, or None when they are no longer waiting.

        Read from the shared snapshot (current for a MemoryStore; at most snapshot_max_age_s old for a shared store;
        never older than this service's own last transaction); a caller missing from it is looked up again in
        freshly loaded state before saying None."""
        snapshot = await self._announcement_snapshot()
        position = snapshot.position(call_id, self.clock())
        if position is None and self._announce_from is not None and self._announce_from[3] is snapshot:
            self._announce_from = None  # e.g. enqueued on another node since: look again in fresh state
            snapshot = await self._announcement_snapshot()
            position = snapshot.position(call_id, self.clock())
        if position is None:
            return None
        ewt = snapshot.ewt(position.queue, position.position)
        return position, ewt, announce(ewt, lang, position.position)

    async def abandon(self, call_id: str) -> Released:
        """The caller hung up or left the queue. If `.was == "offered"`, cancel the INVITE to the agent."""
        return await self._apply_and_dispatch(lambda acd, now: acd.abandon(call_id, now))

    async def request_callback(self, call_id: str, number: str) -> CallbackTask:
        """The caller chose a callback (number confirmed with callbacks.confirm_number): they may hang up."""
        return await self._apply_and_dispatch(lambda acd, now: acd.request_callback(call_id, number, now))

    async def schedule_callback(self, call_id: str, number: str, queue: str, not_before: float) -> CallbackTask:
        """A callback due at `not_before` (epoch s; a case's follow-up), dialled by this node (number confirmed)."""
        return await self._apply_and_dispatch(
            lambda acd, now: acd.schedule_callback(call_id, number, queue, now, not_before, node=self.node))

    async def callback_failed(self, assignment_id: str) -> CallbackTask:
        return await self._apply_and_dispatch(lambda acd, now: acd.callback_failed(assignment_id, now))

    # -------------------------------------------------------------------------------------- agents

    async def set_agent_state(self, agent_id: str, state: str) -> AgentStatus:
        return await self._apply_and_dispatch(lambda acd, now: acd.agent_state(agent_id, state, now))

    async def agent_answered(self, assignment_id: str) -> Assignment:
        return await self._apply_and_dispatch(lambda acd, now: acd.agent_answered(assignment_id, now))

    async def agent_no_answer(self, assignment_id: str) -> Any:
        """Agent did not answer / busy / rejected / unreachable: the caller goes back to the queue head."""
        return await self._apply_and_dispatch(lambda acd, now: acd.agent_no_answer(assignment_id, now))

    async def call_ended(self, call_id: str) -> Assignment | None:
        """The bridged caller-agent call ended (either side hung up): the agent goes to wrap-up."""
        return await self._apply_and_dispatch(lambda acd, now: acd.call_ended(call_id, now))

    # ------------------------------------------------------------------------------------- context

    async def put_context(self, record: CallContextRecord, ttl_s: float = 86400.0, *,
                          callback_number: str | None = None) -> None:
        """Save (or update) a call's context; agents read it by call id through the API. `callback_number` (already
        allowed by the callback policy) lets another node call the caller back if this node is lost."""
        await self.store.put_context(record.context_id, record.to_dict(), ttl_s)
        alias: dict[str, Any] = {"context_id": record.context_id}
        if callback_number:
            alias["callback_number"] = callback_number  # never served by the API (call_context reads the record)
        await self.store.put_context("call:" + record.call_id, alias, ttl_s)

    async def forget_callback_number(self, call_id: str) -> None:
        """The caller no longer waits: the raw number kept for a recovery callback is removed (15.20)."""
        alias = await self.store.get_context("call:" + call_id)
        if alias is not None and "callback_number" in alias:
            await self.store.put_context("call:" + call_id, {"context_id": alias["context_id"]}, 86400.0)

    async def call_context(self, call_id: str) -> dict[str, Any] | None:
        alias = await self.store.get_context("call:" + call_id)
        return None if alias is None else await self.store.get_context(alias["context_id"])

    async def get_context(self, context_id: str) -> dict[str, Any] | None:
        return await self.store.get_context(context_id)

    async def snapshot(self) -> AcdState:
        return await self.store.load()

    # ---------------------------------------------------------------------------------------- loop

    async def step(self) -> list[ServiceEvent]:
        """Apply timers, dispatch every possible assignment, and publish what changed since the last step."""

        def tick_and_dispatch(acd: Acd, now: float) -> tuple[list[QueueEvent], AcdState]:
            events = acd.tick(now)
            # a store that lost its shared backend (ResilientStore degraded) keeps callers waiting, assigns no one
            while getattr(self.store, "dispatching", True) and acd.next_assignment(now) is not None:
                pass
            return events, acd.state

        # A store that tells its version (MemoryStore), unchanged since this service's last commit, and nothing due
        # in that state: skip the O(callers) transaction; only publish what that commit changed (if not yet done).
        last = self._last_commit
        timer_events: list[QueueEvent]
        if (last is not None and last[0] == getattr(self.store, "version", None)
                and not Acd(self.agents_config, self.queues_config, last[1]).due(self.clock())):
            timer_events, state = [], last[1]
        else:
            (timer_events, state), _ = await self._apply_with_state(tick_and_dispatch)
        async with self._publish_lock:
            events: list[ServiceEvent] = [e for e in timer_events if isinstance(e, Overflowed)]
            events += self._changes(state)
            for event in events:
                await self._publish(event)
        return events

    def _changes(self, state: AcdState) -> list[ServiceEvent]:
        events: list[ServiceEvent] = []
        for agent_id, status in sorted(state.agents.items()):
            seen = (status.state, status.assignment_id, status.not_ready_reason)
            if self._seen_agents.get(agent_id) != seen:
                self._seen_agents[agent_id] = seen
                events.append(AgentChanged(agent_id, status.state, status.assignment_id, status.not_ready_reason,
                                           status.consecutive_no_answers))
                if status.not_ready_reason == "no_answer":
                    log.warning("agent set not-ready: consecutive offers not answered",
                                extra={"fields": {"agent": agent_id, "no_answers": status.consecutive_no_answers}})
        for assignment in sorted(state.assignments.values(), key=lambda a: a.offered_at):
            if assignment.id not in self._seen_assignments and assignment.agent_id in self.agents:
                self._seen_assignments.add(assignment.id)
                events.append(AssignmentOffered(assignment, self.agents[assignment.agent_id]))
        self._seen_assignments &= set(state.assignments)
        for entry in state.entries.values():
            if entry.max_wait_reported and entry.call_id not in self._seen_max_wait:
                self._seen_max_wait.add(entry.call_id)
                action = self.queues_config.by_name()[entry.queue].on_max_wait if entry.queue in self.queues_config.by_name() else "callback"
                events.append(MaxWaitReached(entry.call_id, entry.queue, action, entry.node))
        self._seen_max_wait &= set(state.entries)
        return events

    async def _publish(self, event: ServiceEvent) -> None:
        for listener in list(self._listeners):
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one failing listener must not stop routing
                log.exception("ACD listener failed on %s", type(event).__name__)

    def wake(self) -> None:
        """Run the next loop step now instead of after poll_s."""
        self._wake.set()

    async def run(self) -> None:
        """Forever: step, then wait poll_s (or a wake()). Store errors are logged and retried."""
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ACD step failed; retrying")
            try:
                if self.liveness is not None:
                    await self.liveness.tick()
            except asyncio.CancelledError:
                raise
            except StoreUnavailable:
                pass  # the store logged one warning when Redis went away and will log its return
            except Exception:
                log.exception("ACD heartbeat or lost-node recovery failed; retrying")
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # 3.11's wait_for swallows a cancel racing a wake()
                raise asyncio.CancelledError
