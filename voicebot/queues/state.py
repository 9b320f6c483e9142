"""The ACD's shared state as plain records, and their encoding as hashes of JSON strings (one per kind).

Both stores keep exactly this encoding: `encode_state` gives {kind: {key: json}}, `decode_state` the inverse,
so a store writes only the fields that changed and two nodes sharing Redis see the same records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from voicebot.queues.callbacks import CallbackTask

__all__ = [
    "AcdState",
    "AgentStatus",
    "Assignment",
    "QueueEntry",
    "QueueStats",
    "STATE_KINDS",
    "decode_state",
    "encode_state",
]


@dataclass
class QueueEntry:
    """A caller waiting in a queue."""

    call_id: str
    queue: str
    priority: int
    enqueued_at: float  # first enqueue: seniority is kept across overflow and requeue
    queue_since: float  # entered the current queue (overflow timer)
    skills: list[str]
    context_id: str
    node: str
    head: bool = False  # put back at the head after an agent did not answer
    offers: int = 0
    tried_agents: list[str] = field(default_factory=list)
    max_wait_reported: bool = False
    path: list[str] = field(default_factory=list)


AgentState = Literal["offline", "available", "reserved", "busy", "wrap_up"]


@dataclass
class AgentStatus:
    agent_id: str
    state: AgentState = "offline"
    since: float = 0.0
    idle_since: float = 0.0  # when the agent last became free: longest idle is served first
    assignment_id: str | None = None
    call_id: str | None = None
    queue: str | None = None
    answered_at: float | None = None
    wrap_up_until: float | None = None
    handled: int = 0
    no_answers: int = 0
    consecutive_no_answers: int = 0  # reset by an answer or the agent's own "available"
    not_ready_reason: str | None = None  # "no_answer": set offline by the ACD, not by the agent


@dataclass
class Assignment:
    """A caller (or a callback task) offered to an agent: the node owning the call rings the agent."""

    id: str
    kind: Literal["call", "callback"]
    call_id: str
    agent_id: str
    queue: str
    context_id: str
    node: str
    priority: int
    offered_at: float
    waited_s: float
    state: Literal["offered", "connected"] = "offered"
    callback_number: str | None = None
    entry: dict[str, Any] = field(default_factory=dict)  # to requeue the caller unchanged


@dataclass
class QueueStats:
    """Running statistics of one queue (handle time, answers, abandonment, callbacks)."""

    offered: int = 0
    answered: int = 0
    answered_within_sl: int = 0
    total_answer_wait_s: float = 0.0
    abandoned: int = 0
    total_abandon_wait_s: float = 0.0
    handled: int = 0
    aht_s: float = 0.0  # exponentially weighted moving average of handle time (talk + wrap-up)
    callbacks_requested: int = 0
    callbacks_done: int = 0
    callbacks_failed: int = 0

    def add_handle_time(self, seconds: float, alpha: float = 0.1) -> None:
        self.handled += 1
        weight = max(alpha, 1.0 / self.handled)  # a plain mean until there are 1/alpha samples
        self.aht_s += weight * (seconds - self.aht_s)

    @property
    def patience_rate(self) -> float | None:
        """Abandonment rate per waiting second (Erlang-A theta), the censored-exponential MLE; None without data."""
        exposure = self.total_answer_wait_s + self.total_abandon_wait_s
        if self.answered + self.abandoned < 5 or exposure <= 0:
            return None
        return self.abandoned / exposure


@dataclass
class AcdState:
    entries: dict[str, QueueEntry] = field(default_factory=dict)
    agents: dict[str, AgentStatus] = field(default_factory=dict)
    assignments: dict[str, Assignment] = field(default_factory=dict)
    callbacks: dict[str, CallbackTask] = field(default_factory=dict)
    stats: dict[str, QueueStats] = field(default_factory=dict)


_RECORDS: dict[str, type] = {
    "entries": QueueEntry,
    "agents": AgentStatus,
    "assignments": Assignment,
    "callbacks": CallbackTask,
    "stats": QueueStats,
}
STATE_KINDS = tuple(_RECORDS)


def encode_state(state: AcdState) -> dict[str, dict[str, str]]:
    return {
        # vars(): records hold only JSON values (no nested dataclasses), so this equals asdict() at a third of the cost
        kind: {key: json.dumps(vars(record), separators=(",", ":"), sort_keys=True) for key, record in getattr(state, kind).items()}
        for kind in STATE_KINDS
    }


def decode_state(raw: dict[str, dict[str, str]]) -> AcdState:
    state = AcdState()
    for kind, record_type in _RECORDS.items():
        names = {f.name for f in fields(record_type)}
        target = getattr(state, kind)
        for key, text in raw.get(kind, {}).items():
            data = json.loads(text)
            target[key] = record_type(**{name: value for name, value in data.items() if name in names})
    return state
