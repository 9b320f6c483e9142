"""The ACD core: pure routing of waiting callers to free agents. No I/O; the clock is passed in.

    acd = Acd(agents_config, queues_config)             # or Acd(..., state=decoded_state) on a store's state
    acd.agent_state("a1", "available", now)
    acd.enqueue("call-1", "cards", ["lang:en-US"], priority=0, context="ctx-1", now=now)  # -> Position
    assignment = acd.next_assignment(now)                # highest priority, then longest wait; longest-idle agent
    acd.agent_answered(assignment.id, now)  |  acd.agent_no_answer(assignment.id, now)   # back at the head
    acd.call_ended("call-1", now)                        # agent -> wrap-up; then tick() makes them available
    events = acd.tick(now)                               # overflow, max wait reached, wrap-up timeouts

Every method mutates `acd.state` (an AcdState) in place, so a store can run it inside a transaction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from voicebot.queues.callbacks import CallbackTask, attempt_failed, is_due
from voicebot.queues.models import AgentConfig, AgentsConfig, QueueConfig, QueuesConfig, parse_requirements
from voicebot.queues.state import AcdState, AgentState, AgentStatus, Assignment, QueueEntry, QueueStats

__all__ = [
    "Acd",
    "AcdError",
    "AlreadyQueued",
    "InvalidTransition",
    "MaxWaitReached",
    "Overflowed",
    "Position",
    "QueueClosed",
    "QueueEvent",
    "QueueFull",
    "Released",
    "UnknownAgent",
    "UnknownAssignment",
    "UnknownQueue",
    "WrapUpEnded",
]


class AcdError(Exception):
    """A request the ACD refuses; the message says why."""


class UnknownQueue(AcdError):
    pass


class UnknownAgent(AcdError):
    pass


class UnknownAssignment(AcdError):
    pass


class QueueFull(AcdError):
    pass


class QueueClosed(AcdError):
    pass


class AlreadyQueued(AcdError):
    pass


class InvalidTransition(AcdError):
    pass


@dataclass(frozen=True)
class Position:
    call_id: str
    queue: str
    position: int  # 1 = next to be served in this queue
    waiting_s: float


@dataclass(frozen=True)
class Overflowed:
    call_id: str
    from_queue: str
    to_queue: str


@dataclass(frozen=True)
class MaxWaitReached:
    """The caller has waited the queue's max_wait_s: offer a callback (or play the message)."""

    call_id: str
    queue: str
    action: Literal["callback", "message"]
    node: str


@dataclass(frozen=True)
class WrapUpEnded:
    agent_id: str


QueueEvent = Overflowed | MaxWaitReached | WrapUpEnded


@dataclass(frozen=True)
class Released:
    """What `abandon` undid: the caller was waiting, ringing an agent (cancel that INVITE) or talking."""

    call_id: str
    was: Literal["waiting", "offered", "connected", "callback", "unknown"]
    assignment: Assignment | None = None


class Acd:
    """Skills- and priority-based routing over an AcdState (see module docstring)."""

    def __init__(self, agents: AgentsConfig, queues: QueuesConfig, state: AcdState | None = None) -> None:
        self.agents: dict[str, AgentConfig] = agents.by_id()
        self.queues: dict[str, QueueConfig] = queues.by_name()
        self.state = state if state is not None else AcdState()
        for agent_id in self.agents:
            self.state.agents.setdefault(agent_id, AgentStatus(agent_id))

    # ------------------------------------------------------------------------------------- callers

    def enqueue(
        self,
        call_id: str,
        queue: str,
        skills: list[str] | tuple[str, ...] = (),
        priority: int = 0,
        context: str = "",
        now: float = 0.0,
        *,
        node: str = "local",
        flags: tuple[str, ...] = (),
    ) -> Position:
        """Put a caller in `queue`; raises UnknownQueue, QueueClosed, QueueFull, AlreadyQueued or ValueError."""
        config = self._queue(queue)
        parse_requirements(skills)  # reject malformed skills now, not when routing
        if call_id in self.state.entries or any(a.call_id == call_id for a in self.state.assignments.values()):
            raise AlreadyQueued(f"call {call_id!r} is already queued or with an agent")
        if not config.is_open(now):
            raise QueueClosed(f"queue {queue!r} is closed now (business hours)")
        waiting = sum(1 for entry in self.state.entries.values() if entry.queue == queue)
        if waiting >= config.max_size:
            raise QueueFull(f"queue {queue!r} is full ({config.max_size} callers waiting)")
        self.state.entries[call_id] = QueueEntry(
            call_id=call_id,
            queue=queue,
            priority=config.priority_for(int(priority), flags),
            enqueued_at=now,
            queue_since=now,
            skills=list(skills),
            context_id=context,
            node=node,
            path=[queue],
        )
        self._stats(queue).offered += 1
        position = self.position(call_id, now)
        assert position is not None
        return position

    def position(self, call_id: str, now: float) -> Position | None:
        entry = self.state.entries.get(call_id)
        if entry is None:
            return None
        key = _order(entry)
        ahead = sum(1 for other in self.state.entries.values() if other.queue == entry.queue and _order(other) < key)
        return Position(call_id, entry.queue, ahead + 1, max(0.0, now - entry.enqueued_at))

    def positions(self, queue: str, now: float) -> list[Position]:
        self._queue(queue)
        waiting = sorted((e for e in self.state.entries.values() if e.queue == queue), key=_order)
        return [Position(e.call_id, queue, index + 1, max(0.0, now - e.enqueued_at)) for index, e in enumerate(waiting)]

    def abandon(self, call_id: str, now: float) -> Released:
        """The caller hung up (or left the queue): forget them, free a ringing agent, end a connected call."""
        entry = self.state.entries.pop(call_id, None)
        if entry is not None:
            self._count_abandon(entry.queue, now - entry.enqueued_at)
            return Released(call_id, "waiting")
        assignment = self._assignment_for_call(call_id)
        if assignment is not None:
            if assignment.state == "connected":
                self.call_ended(call_id, now)
                return Released(call_id, "connected", assignment)
            del self.state.assignments[assignment.id]
            status = self.state.agents[assignment.agent_id]
            self._set(status, "available", now, keep_idle=True)
            if assignment.kind == "callback":
                task = self.state.callbacks.get(_callback_id(call_id))
                if task is not None:
                    task.state = "pending"
                return Released(call_id, "offered", assignment)
            self._count_abandon(assignment.queue, now - assignment.entry.get("enqueued_at", now))
            return Released(call_id, "offered", assignment)
        if self.state.callbacks.pop(_callback_id(call_id), None) is not None:
            return Released(call_id, "callback")
        return Released(call_id, "unknown")

    def request_callback(self, call_id: str, number: str, now: float, *, max_attempts: int = 3) -> CallbackTask:
        """Turn a waiting caller into a callback task that keeps their place (number already confirmed)."""
        entry = self.state.entries.pop(call_id, None)
        if entry is None:
            raise AcdError(f"call {call_id!r} is not waiting in a queue")
        task = CallbackTask(
            id=_callback_id(call_id),
            call_id=call_id,
            number=number,
            queue=entry.queue,
            skills=entry.skills,
            priority=entry.priority,
            context_id=entry.context_id,
            node=entry.node,
            requested_at=now,
            enqueued_at=entry.enqueued_at,
            not_before=now,
            max_attempts=max_attempts,
            path=entry.path,
        )
        self.state.callbacks[task.id] = task
        self._stats(entry.queue).callbacks_requested += 1
        return task

    def schedule_callback(self, call_id: str, number: str, queue: str, now: float, not_before: float, *,
                          node: str = "", skills: list[str] | None = None, priority: int = 0,
                          max_attempts: int = 3) -> CallbackTask:
        """A callback at a time (a case's follow-up, 回访): offered to a free agent of `queue` from `not_before`.
        Scheduling again for the same `call_id` moves the pending task to the new time."""
        if queue not in self.queues:
            raise UnknownQueue(f"no queue {queue!r}")
        task = CallbackTask(id=_callback_id(call_id), call_id=call_id, number=number, queue=queue,
                            skills=list(skills or []), priority=priority, context_id="", node=node, requested_at=now,
                            enqueued_at=not_before, not_before=not_before, max_attempts=max_attempts, path=[queue])
        existing = self.state.callbacks.get(task.id)
        if existing is not None and existing.state == "dialing":
            raise AcdError(f"the callback for {call_id!r} is being dialled now")
        self.state.callbacks[task.id] = task
        if existing is None:
            self._stats(queue).callbacks_requested += 1
        return task

    def callback_failed(self, assignment_id: str, now: float, retry_after_s: float = 300.0) -> CallbackTask:
        """The called-back customer did not answer: free the agent, retry the task later (or give up)."""
        assignment = self._assignment(assignment_id)
        if assignment.kind != "callback":
            raise AcdError(f"assignment {assignment_id!r} is not a callback")
        del self.state.assignments[assignment_id]
        self._set(self.state.agents[assignment.agent_id], "available", now, keep_idle=True)
        task = attempt_failed(self.state.callbacks[_callback_id(assignment.call_id)], now, retry_after_s)
        if task.state == "failed":
            del self.state.callbacks[task.id]
            self._stats(task.queue).callbacks_failed += 1
        else:
            self.state.callbacks[task.id] = task
        return task

    # -------------------------------------------------------------------------------------- agents

    def agent_state(self, agent_id: str, state: str, now: float) -> AgentStatus:
        """An agent's own request: go available/offline, or end wrap-up early (-> available)."""
        status = self._agent(agent_id)
        if state == status.state:
            return status
        if state == "available" and status.state in ("offline", "wrap_up"):
            self._finish_wrap_up(status, now)
            self._set(status, "available", now)
            status.consecutive_no_answers = 0  # the agent is back at the desk
        elif state == "offline" and status.state in ("available", "wrap_up"):
            self._finish_wrap_up(status, now)
            self._set(status, "offline", now)
        elif state == "offline" and status.state == "reserved":
            assert status.assignment_id is not None
            self.agent_no_answer(status.assignment_id, now, then="offline")
        elif state == "wrap_up" and status.state == "busy":
            assert status.call_id is not None
            self.call_ended(status.call_id, now)
        else:
            raise InvalidTransition(f"agent {agent_id!r} cannot go from {status.state} to {state}")
        return status

    def next_assignment(self, now: float) -> Assignment | None:
        """Offer the most urgent caller (priority, then longest wait) to the longest-idle agent who can serve them."""
        free = [s for s in self.state.agents.values() if s.state == "available" and s.agent_id in self.agents]
        if not free:
            return None
        candidates: list[QueueEntry | CallbackTask] = list(self.state.entries.values())
        candidates += [task for task in self.state.callbacks.values() if is_due(task, now)]
        for candidate in sorted(candidates, key=_order):
            agent = self._best_agent(candidate, free)
            if agent is not None:
                return self._assign(candidate, agent, now)
        return None

    def agent_answered(self, assignment_id: str, now: float) -> Assignment:
        assignment = self._assignment(assignment_id)
        if assignment.state == "connected":
            return assignment
        assignment.state = "connected"
        status = self.state.agents[assignment.agent_id]
        status.consecutive_no_answers = 0
        self._set(status, "busy", now)
        status.answered_at = now
        if assignment.kind == "call":
            stats = self._stats(assignment.queue)
            stats.answered += 1
            wait = now - assignment.entry.get("enqueued_at", assignment.offered_at)
            stats.total_answer_wait_s += wait
            stats.answered_within_sl += wait <= self.queues[assignment.queue].service_level_s
        else:
            self.state.callbacks[_callback_id(assignment.call_id)].state = "dialing"
        return assignment

    def agent_no_answer(self, assignment_id: str, now: float, *, then: str = "available") -> QueueEntry | CallbackTask:
        """The agent did not answer, was busy or rejected: the caller goes back to the head of the queue."""
        assignment = self._assignment(assignment_id)
        del self.state.assignments[assignment_id]
        status = self.state.agents[assignment.agent_id]
        status.no_answers += 1
        status.consecutive_no_answers += 1
        config = self.agents.get(assignment.agent_id)
        limit = config.max_no_answers if config is not None else 0
        if then != "offline" and limit and status.consecutive_no_answers >= limit:
            self._set(status, "offline", now)  # not-ready: the phone is not being answered
            status.not_ready_reason = "no_answer"
        else:
            self._set(status, "offline" if then == "offline" else "available", now)  # back of the idle line
        if assignment.kind == "callback":
            task = self.state.callbacks[_callback_id(assignment.call_id)]
            task.state = "pending"
            return task
        entry = QueueEntry(**assignment.entry)
        entry.head = True
        if assignment.agent_id not in entry.tried_agents:
            entry.tried_agents.append(assignment.agent_id)
        self.state.entries[entry.call_id] = entry
        return entry

    def call_ended(self, call_id: str, now: float) -> Assignment | None:
        """The bridged call is over: the agent enters wrap-up (or is free at once with wrap_up_s 0)."""
        assignment = self._assignment_for_call(call_id)
        if assignment is None:
            return None
        del self.state.assignments[assignment.id]
        status = self.state.agents[assignment.agent_id]
        if assignment.state != "connected":
            self._set(status, "available", now, keep_idle=True)
            return assignment
        if assignment.kind == "callback":
            if self.state.callbacks.pop(_callback_id(call_id), None) is not None:
                self._stats(assignment.queue).callbacks_done += 1
        status.handled += 1
        wrap_up_s = self.agents[assignment.agent_id].wrap_up_s
        self._set(status, "wrap_up", now)
        status.assignment_id = None  # call_id stays during wrap-up: the agent may still read its context
        status.wrap_up_until = now + wrap_up_s
        if wrap_up_s <= 0:
            self._finish_wrap_up(status, now)
            self._set(status, "available", now)
        return assignment

    # ---------------------------------------------------------------------------------------- time

    def tick(self, now: float) -> list[QueueEvent]:
        """Apply timers: wrap-up timeouts, overflow to another queue, max wait reached (reported once)."""
        events: list[QueueEvent] = []
        for status in self.state.agents.values():
            if status.state == "wrap_up" and status.wrap_up_until is not None and status.wrap_up_until <= now:
                self._finish_wrap_up(status, status.wrap_up_until)
                self._set(status, "available", now)
                events.append(WrapUpEnded(status.agent_id))
        for entry in list(self.state.entries.values()):
            config = self.queues.get(entry.queue)
            if config is None:
                continue
            overflow = config.overflow
            if overflow is not None and now - entry.queue_since >= overflow.after_s and overflow.queue not in entry.path:
                events.append(Overflowed(entry.call_id, entry.queue, overflow.queue))
                entry.queue, entry.queue_since = overflow.queue, now
                entry.path.append(overflow.queue)
            limits = [self.queues[q] for q in entry.path if q in self.queues and self.queues[q].max_wait_s is not None]
            strictest = min(limits, key=lambda q: q.max_wait_s or 0.0, default=None)  # overflow keeps the promise
            if strictest is not None and not entry.max_wait_reported and now - entry.enqueued_at >= (strictest.max_wait_s or 0.0):
                entry.max_wait_reported = True
                events.append(MaxWaitReached(entry.call_id, entry.queue, strictest.on_max_wait, entry.node))
        return events

    def due(self, now: float) -> bool:
        """Whether `tick(now)` or `next_assignment(now)` would change anything (read-only: nothing is mutated)."""
        for status in self.state.agents.values():
            if status.state == "wrap_up" and status.wrap_up_until is not None and status.wrap_up_until <= now:
                return True
        for entry in self.state.entries.values():
            config = self.queues.get(entry.queue)
            if config is None:
                continue
            overflow = config.overflow
            if overflow is not None and now - entry.queue_since >= overflow.after_s and overflow.queue not in entry.path:
                return True
            if not entry.max_wait_reported:
                limits = [self.queues[q].max_wait_s for q in entry.path if q in self.queues]
                strictest = min((limit for limit in limits if limit is not None), default=None)
                if strictest is not None and now - entry.enqueued_at >= strictest:
                    return True
        free = [s for s in self.state.agents.values() if s.state == "available" and s.agent_id in self.agents]
        if not free:
            return False
        candidates: list[QueueEntry | CallbackTask] = list(self.state.entries.values())
        candidates += [task for task in self.state.callbacks.values() if is_due(task, now)]
        return any(self._best_agent(candidate, free) is not None for candidate in candidates)

    # ------------------------------------------------------------------------------------- helpers

    def staffed(self, queue: str) -> tuple[int, int]:
        """(agents logged in who can serve `queue`, of whom available now)."""
        wanted = parse_requirements(self._queue(queue).skills)
        logged_in = [
            s for s in self.state.agents.values()
            if s.state != "offline" and s.agent_id in self.agents and wanted.met_by(self.agents[s.agent_id])
        ]
        return len(logged_in), sum(1 for s in logged_in if s.state == "available")

    def _best_agent(self, candidate: QueueEntry | CallbackTask, free: list[AgentStatus]) -> AgentStatus | None:
        queue = self.queues.get(candidate.queue)
        if queue is None:
            return None
        wanted = parse_requirements([*queue.skills, *candidate.skills])
        tried = set(getattr(candidate, "tried_agents", ()))
        able = [s for s in free if wanted.met_by(self.agents[s.agent_id])]
        if not able:
            return None
        return min(able, key=lambda s: (s.agent_id in tried, s.idle_since, s.agent_id))

    def _assign(self, candidate: QueueEntry | CallbackTask, status: AgentStatus, now: float) -> Assignment:
        if isinstance(candidate, QueueEntry):
            del self.state.entries[candidate.call_id]
            candidate.offers += 1
            candidate.head = False
            kind: Literal["call", "callback"]
            kind, number, entry = "call", None, asdict(candidate)
            assignment_id = f"{candidate.call_id}#{candidate.offers}"
        else:
            candidate.state = "dialing"
            kind, number, entry = "callback", candidate.number, {"enqueued_at": candidate.enqueued_at}
            assignment_id = f"{candidate.id}#{candidate.attempts + 1}.{status.no_answers}"
            candidate.state = "dialing"
        assignment = Assignment(
            id=assignment_id,
            kind=kind,
            call_id=candidate.call_id,
            agent_id=status.agent_id,
            queue=candidate.queue,
            context_id=candidate.context_id,
            node=candidate.node,
            priority=candidate.priority,
            offered_at=now,
            waited_s=max(0.0, now - candidate.enqueued_at),
            callback_number=number,
            entry=entry,
        )
        self.state.assignments[assignment.id] = assignment
        self._set(status, "reserved", now)
        status.assignment_id, status.call_id, status.queue = assignment.id, candidate.call_id, candidate.queue
        return assignment

    def _set(self, status: AgentStatus, state: AgentState, now: float, *, keep_idle: bool = False) -> None:
        if state == "available" and not keep_idle:
            status.idle_since = now
        status.state = state
        status.since = now
        status.not_ready_reason = None
        if state in ("available", "offline"):
            status.assignment_id = status.call_id = None
            status.answered_at = status.wrap_up_until = None

    def _finish_wrap_up(self, status: AgentStatus, now: float) -> None:
        """Record the handle time (answer to end of wrap-up) of the call the agent just finished."""
        if status.state == "wrap_up" and status.answered_at is not None and status.queue is not None:
            self._stats(status.queue).add_handle_time(max(0.0, now - status.answered_at))
            status.queue = None

    def _count_abandon(self, queue: str, waited: float) -> None:
        stats = self._stats(queue)
        stats.abandoned += 1
        stats.total_abandon_wait_s += max(0.0, waited)

    def _stats(self, queue: str) -> QueueStats:
        return self.state.stats.setdefault(queue, QueueStats())

    def _queue(self, name: str) -> QueueConfig:
        config = self.queues.get(name)
        if config is None:
            raise UnknownQueue(f"no queue named {name!r}; known: {', '.join(sorted(self.queues))}")
        return config

    def _agent(self, agent_id: str) -> AgentStatus:
        if agent_id not in self.agents:
            raise UnknownAgent(f"no agent {agent_id!r} in the agents configuration")
        return self.state.agents.setdefault(agent_id, AgentStatus(agent_id))

    def _assignment(self, assignment_id: str) -> Assignment:
        assignment = self.state.assignments.get(assignment_id)
        if assignment is None:
            raise UnknownAssignment(f"no current assignment {assignment_id!r} (already answered, ended or re-queued)")
        return assignment

    def _assignment_for_call(self, call_id: str) -> Assignment | None:
        return next((a for a in self.state.assignments.values() if a.call_id == call_id), None)


def _order(item: QueueEntry | CallbackTask) -> tuple[int, bool, float, str]:
    """Serve the highest priority first, re-queued callers at the head, then the longest wait."""
    return (-item.priority, not getattr(item, "head", False), item.enqueued_at, item.call_id)


def _callback_id(call_id: str) -> str:
    return f"cb:{call_id}"
