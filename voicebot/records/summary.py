"""What each call-record event adds to the per-call summary and the daily roll-ups the analytics read. Pure.

Analytics over a million calls must answer in well under a second, so they do not scan events: each event updates
its call's summary columns (language, queued, reached a person, hung up early, last node; the first queue joined with
when it was joined, when an agent answered, and the first wait announced there; the class at the end) and a few
daily counters keyed by (UTC day, dialplan, language, metric, key):
    node      key = node      calls that entered the node (once per call)
    nomatch / noinput   key = node
    intent    key = intent ('' when none was recognised) for each spoken caller turn
    left      key = node      abandoned calls, by the node they were left at
    asr_conf  key = confidence bucket ('0.0' … '0.9', tenths) of each recognised caller turn
    turn_ms   key = latency bucket ('100' … '5000', '+Inf': upper bounds in ms) of each turn the bot answered
Calls that joined a queue are counted a second time under that queue (`queue_rollups`): when the queue is joined,
the call's earlier events are replayed (`replay`), so the queue filter of the analytics reads counters too.
Both stores (SQLite here, PostgreSQL in postgres.py) apply exactly these rules.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from voicebot.records.metrics import LATENCY_BUCKETS_MS, classify

__all__ = ["ABANDONED", "CONFIDENCE_BUCKETS", "CallSummary", "FLAG_KINDS", "LATENCY_KEYS", "SUMMARY_COLUMNS",
           "confidence_bucket", "day_of", "latency_bucket", "replay", "rollups_for_event"]

FLAG_KINDS = {"queue_joined": "queued", "agent_answered": "to_person", "transferred": "to_person",
              "caller_hangup": "left_early"}
ABANDONED = ("abandoned_in_bot", "abandoned_in_queue")
CONFIDENCE_BUCKETS = tuple(f"{tenth / 10:.1f}" for tenth in range(10))
LATENCY_KEYS = (*(str(bound) for bound in LATENCY_BUCKETS_MS), "+Inf")
# The calls row's summary columns, in CallSummary.row() order.
SUMMARY_COLUMNS = ("node", "lang", "queued", "to_person", "left_early", "queue", "queued_at", "answered_at",
                   "ewt_at", "ewt_low", "ewt_high")
_FLAGS = ("queued", "to_person", "left_early")


def day_of(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def confidence_bucket(confidence: float) -> str:
    """The tenth a recognition confidence falls in: 0.87 -> '0.8'; 1.0 is in '0.9'."""
    return CONFIDENCE_BUCKETS[min(9, max(0, math.floor(confidence * 10 + 1e-9)))]


def latency_bucket(ms: float) -> str:
    """The smallest bound (ms) a turn latency is within, as the Prometheus histogram counts it; '+Inf' above all."""
    return next((str(bound) for bound in LATENCY_BUCKETS_MS if ms <= bound), "+Inf")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass
class CallSummary:
    """A call's running summary (cached by the writer; rebuilt from the calls row after a restart)."""

    dialplan: str = ""
    lang: str = ""
    node: str = ""
    flags: set[str] = field(default_factory=set)
    visited: set[str] = field(default_factory=set)
    queue: str = ""  # the first queue the call joined
    queued_at: float | None = None
    answered_at: float | None = None  # an agent answered (after queueing)
    ewt_at: float | None = None  # the first wait announced to the caller in the queue: when, and its range (s)
    ewt_low: float | None = None
    ewt_high: float | None = None

    @classmethod
    def from_row(cls, dialplan: str | None, row: Iterable[Any] | None) -> CallSummary:
        """From the calls row's SUMMARY_COLUMNS (None: no row yet)."""
        summary = cls(dialplan=dialplan or "")
        if row is not None:
            values = list(row)
            summary.node, summary.lang = values[0] or "", values[1] or ""
            summary.flags = {name for name, on in zip(_FLAGS, values[2:5]) if on}
            summary.queue = values[5] or ""
            summary.queued_at, summary.answered_at, summary.ewt_at, summary.ewt_low, summary.ewt_high = values[6:11]
        return summary

    def row(self) -> tuple[Any, ...]:
        """The values of SUMMARY_COLUMNS."""
        return (self.node or None, self.lang, *(name in self.flags for name in _FLAGS), self.queue or None,
                self.queued_at, self.answered_at, self.ewt_at, self.ewt_low, self.ewt_high)

    def kinds(self) -> list[str]:
        """The event kinds classify() needs, from the flags."""
        back = {"queued": "queue_joined", "to_person": "agent_answered", "left_early": "caller_hangup"}
        return [back[flag] for flag in self.flags]

    def final_class(self, outcome: str) -> str:
        return classify(outcome, self.kinds())


def _queue_timing(summary: CallSummary, kind: str, data: Mapping[str, Any], t: float) -> None:
    if kind == "queue_joined" and not summary.queue:
        queue = data.get("queue")
        summary.queue = queue if isinstance(queue, str) and queue else "?"
        summary.queued_at = t
    elif kind == "agent_answered" and summary.queued_at is not None and summary.answered_at is None:
        summary.answered_at = t
    elif kind == "ewt_announced" and summary.queued_at is not None and summary.ewt_at is None:
        low, high = _number(data.get("low_s")), _number(data.get("high_s"))
        if low is not None and high is not None and 0 <= low <= high:
            summary.ewt_at, summary.ewt_low, summary.ewt_high = t, low, high


def rollups_for_event(summary: CallSummary, kind: str, data: Mapping[str, Any],
                      t: float = 0.0) -> list[tuple[str, str]]:
    """Update `summary` for one event at `t`; the (metric, key) counters it adds one to."""
    node = data.get("node")
    if isinstance(node, str) and node:
        summary.node = node
    if kind == "language" and isinstance(data.get("lang"), str):
        summary.lang = data["lang"]
    if kind in FLAG_KINDS:
        summary.flags.add(FLAG_KINDS[kind])
    _queue_timing(summary, kind, data, t)
    if kind == "node" and isinstance(node, str) and node and node not in summary.visited:
        summary.visited.add(node)
        return [("node", node)]
    if kind in ("nomatch", "noinput") and isinstance(node, str):
        return [(kind, node)]
    if kind == "caller":
        counted: list[tuple[str, str]] = []
        confidence = _number(data.get("asr_confidence"))
        if confidence is not None and data.get("kind") != "dtmf":
            counted.append(("asr_conf", confidence_bucket(confidence)))
        if data.get("kind") not in ("dtmf", "nomatch") and data.get("text") not in ("", None):
            intent = data.get("intent")
            counted.append(("intent", intent if isinstance(intent, str) else ""))
        return counted
    if kind == "turn":
        reply_ms = _number(data.get("reply_ms"))
        return [("turn_ms", latency_bucket(reply_ms))] if reply_ms is not None and reply_ms >= 0 else []
    return []


def replay(dialplan: str, events: Iterable[tuple[float, str, Mapping[str, Any]]]) -> list[tuple[float, str, str, str]]:
    """The counters a call's events (t, kind, data; in order) added: (t, language then, metric, key). Used when a
    call joins a queue, to count its turns so far under that queue."""
    summary = CallSummary(dialplan=dialplan)
    counted = []
    for t, kind, data in events:
        for metric, key in rollups_for_event(summary, kind, data, t):
            counted.append((t, summary.lang, metric, key))
    return counted
