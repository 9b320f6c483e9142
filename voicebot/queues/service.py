"""The ACD as a service: the pure `Acd` run inside store transactions, plus a loop that applies timers,
dispatches waiting callers to free agents and tells subscribers what happened (on every node alike).

    service = AcdService(store, agents_config, queues_config, node="node-a")
    service.subscribe(on_event)          # AssignmentOffered / AgentChanged / MaxWaitReached / Overflowed
    task = asyncio.create_task(service.run())
    await service.enqueue(call_id, "cards", ["lang:en-US"], priority=0, context_id=ctx.context_id)

Assignments and agent changes are detected by comparing snapshots of the shared state, so a caller enqueued
on node A and an agent freed on node B produce an AssignmentOffered on both nodes; only the node named in
`assignment.node` (the one holding the caller's call) rings the agent.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from voicebot.queues.acd import Acd, MaxWaitReached, Overflowed, Position, QueueEvent, Released
from voicebot.queues.callbacks import CallbackTask
from voicebot.queues.context import CallContextRecord
from voicebot.queues.ewt import Ewt, announce, estimate
from voicebot.queues.models import AgentConfig, AgentsConfig, QueuesConfig
from voicebot.queues.state import AcdState, AgentStatus, Assignment
from voicebot.queues.store import Store

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
        self._seen_agents: dict[str, tuple[str, str | None]] = {}
        self._seen_max_wait: set[str] = set()
        self._publish_lock = asyncio.Lock()
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------------------------ plumbing

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` for every ServiceEvent; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def _apply(self, operation: Callable[[Acd, float], Any]) -> Any:
        now = self.clock()
        return await self.store.transact(lambda state: operation(Acd(self.agents_config, self.queues_config, state), now))

    async def _apply_and_dispatch(self, operation: Callable[[Acd, float], Any]) -> Any:
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
        """(position, ewt, sentence to speak) for a waiting caller, or None when they are no longer waiting."""
        state = await self.store.load()
        position = Acd(self.agents_config, self.queues_config, state).position(call_id, self.clock())
        if position is None:
            return None
        ewt = await self.ewt(position.queue, position.position, state)
        return position, ewt, announce(ewt, lang, position.position)

    async def abandon(self, call_id: str) -> Released:
        """The caller hung up or left the queue. If `.was == "offered"`, cancel the INVITE to the agent."""
        return await self._apply_and_dispatch(lambda acd, now: acd.abandon(call_id, now))

    async def request_callback(self, call_id: str, number: str) -> CallbackTask:
        """The caller chose a callback (number confirmed with callbacks.confirm_number): they may hang up."""
        return await self._apply_and_dispatch(lambda acd, now: acd.request_callback(call_id, number, now))

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

    async def put_context(self, record: CallContextRecord, ttl_s: float = 86400.0) -> None:
        """Save (or update) a call's context; agents read it by call id through the API."""
        await self.store.put_context(record.context_id, record.to_dict(), ttl_s)
        await self.store.put_context("call:" + record.call_id, {"context_id": record.context_id}, ttl_s)

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
            while acd.next_assignment(now) is not None:
                pass
            return events, acd.state

        timer_events, state = await self._apply(tick_and_dispatch)
        async with self._publish_lock:
            events: list[ServiceEvent] = [e for e in timer_events if isinstance(e, Overflowed)]
            events += self._changes(state)
            for event in events:
                await self._publish(event)
        return events

    def _changes(self, state: AcdState) -> list[ServiceEvent]:
        events: list[ServiceEvent] = []
        for agent_id, status in sorted(state.agents.items()):
            seen = (status.state, status.assignment_id)
            if self._seen_agents.get(agent_id) != seen:
                self._seen_agents[agent_id] = seen
                events.append(AgentChanged(agent_id, status.state, status.assignment_id))
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
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
