"""Calls left behind by a lost node: which shared-state records belong to a node that is gone, and the cleanup.

Every node renews a heartbeat in the store (its process start time, with a TTL). A record is orphaned when the
node that owns it has no live heartbeat, or restarted after the record was made (the old process's calls are gone):

    live = {"node-a": 1700000000.0}                       # node -> start time of its running process
    orphans = find_orphans(state, live, now)              # pure decision
    lost = recover(acd, orphans, now, numbers, node="node-a")   # pure cleanup, run inside a store transaction

`now` is when `live` was observed: records made after it are never judged (a node that started since then may own
them). `recover` removes the lost callers from the queues (positions and EWT stay honest), frees the agents they
held, re-offers each lost caller as a callback task owned by the surviving node when a number is known (already
checked against the callback policy), re-owns pending callback tasks, and reports one LostCall per lost caller.
Run in a store transaction, the cleanup happens exactly once across nodes: a second node finds nothing left.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from voicebot.queues.acd import Acd
from voicebot.queues.state import AcdState, AgentStatus, QueueEntry

__all__ = ["LostCall", "Orphans", "find_orphans", "is_lost", "recover"]


@dataclass(frozen=True)
class Orphans:
    """Keys of the records owned by lost nodes, per kind."""

    entries: tuple[str, ...] = ()  # call ids waiting in a queue
    assignments: tuple[str, ...] = ()  # assignment ids: an agent rung or connected by a lost node
    callbacks: tuple[str, ...] = ()  # pending callback task ids whose dialling node is gone

    def __bool__(self) -> bool:
        return bool(self.entries or self.assignments or self.callbacks)

    def within(self, other: Orphans) -> Orphans:
        """The records orphaned both here and in `other` (a later look at the state keeps only what it confirms)."""
        return Orphans(tuple(k for k in self.entries if k in other.entries),
                       tuple(k for k in self.assignments if k in other.assignments),
                       tuple(k for k in self.callbacks if k in other.callbacks))

    def call_ids(self, state: AcdState) -> list[str]:
        """The callers who were waiting or being offered (their callback numbers are needed to recover them)."""
        offered = [state.assignments[a].call_id for a in self.assignments
                   if a in state.assignments and state.assignments[a].kind == "call"]
        return [*self.entries, *offered]


@dataclass(frozen=True)
class LostCall:
    """One caller whose node was lost: what the surviving node records for them."""

    call_id: str
    queue: str
    node: str  # the lost node
    context_id: str
    waited_s: float
    outcome: str
    callback: bool


def is_lost(node: str, made_at: float, live: Mapping[str, float], now: float) -> bool:
    """Whether a record `node` made at `made_at` outlived its process (no heartbeat, or a restart since)."""
    if made_at > now:
        return False  # newer than the live-node snapshot: cannot be judged yet
    started = live.get(node)
    return started is None or made_at < started


def find_orphans(state: AcdState, live: Mapping[str, float], now: float) -> Orphans:
    """The records of `state` owned by nodes not in `live` (node -> process start time) as observed at `now`."""
    entries = tuple(sorted(e.call_id for e in state.entries.values() if is_lost(e.node, e.enqueued_at, live, now)))
    assignments = tuple(sorted(a.id for a in state.assignments.values() if is_lost(a.node, a.offered_at, live, now)))
    callbacks = tuple(sorted(
        t.id for t in state.callbacks.values()
        if t.state == "pending" and t.node not in live and t.requested_at <= now))
    return Orphans(entries, assignments, callbacks)


def recover(acd: Acd, orphans: Orphans, now: float, numbers: Mapping[str, str | None], node: str) -> list[LostCall]:
    """Clean up `orphans` in `acd.state` on behalf of surviving `node`; `numbers`: call id -> allowed callback number.

    Records that changed since `orphans` was computed are skipped (another node recovered them first).
    """
    state = acd.state
    lost: list[LostCall] = []
    for assignment_id in orphans.assignments:
        assignment = state.assignments.pop(assignment_id, None)
        if assignment is None:
            continue
        status = state.agents.get(assignment.agent_id)
        if assignment.kind == "callback":
            task = state.callbacks.get(f"cb:{assignment.call_id}")
            if task is not None:
                task.state, task.node, task.not_before = "pending", node, now
            if status is not None and status.assignment_id == assignment_id:
                _release(status, now)
        elif assignment.state == "connected":
            state.assignments[assignment_id] = assignment  # the agent's call dropped with the node: wrap-up
            acd.call_ended(assignment.call_id, now)
            lost.append(LostCall(assignment.call_id, assignment.queue, assignment.node, assignment.context_id,
                                 assignment.waited_s, "node lost during agent call", False))
        else:
            if status is not None and status.assignment_id == assignment_id:
                _release(status, now)
            state.entries[assignment.call_id] = QueueEntry(**assignment.entry)
            lost.append(_requeue_lost(acd, state.entries[assignment.call_id], now, numbers, node))
    for call_id in orphans.entries:
        entry = state.entries.get(call_id)
        if entry is not None:
            lost.append(_requeue_lost(acd, entry, now, numbers, node))
    for task_id in orphans.callbacks:
        task = state.callbacks.get(task_id)
        if task is not None and task.state == "pending":
            task.node = node
    return lost


def _requeue_lost(acd: Acd, entry: QueueEntry, now: float, numbers: Mapping[str, str | None], node: str) -> LostCall:
    """The waiting caller is gone with their node: a callback task keeping their place, or nothing to call."""
    number = numbers.get(entry.call_id)
    waited = max(0.0, now - entry.enqueued_at)
    if number:
        task = acd.request_callback(entry.call_id, number, now)
        task.node = node
        return LostCall(entry.call_id, entry.queue, entry.node, entry.context_id, waited,
                        "node lost → callback queued", True)
    del acd.state.entries[entry.call_id]
    return LostCall(entry.call_id, entry.queue, entry.node, entry.context_id, waited,
                    "node lost → no callback number", False)


def _release(status: AgentStatus, now: float) -> None:
    """A reserved agent is free again, keeping their place in the idle line (they did nothing wrong)."""
    status.state = "available"
    status.since = now
    status.assignment_id = status.call_id = None
    status.answered_at = status.wrap_up_until = None
