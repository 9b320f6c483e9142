"""What each call-record event adds to the per-call summary and the daily roll-ups the analytics read. Pure.

Analytics over a million calls must answer in well under a second, so they do not scan events: each event updates
its call's summary columns (language, queued, reached a person, hung up early, last node; the class at the end)
and a few daily counters keyed by (UTC day, dialplan, language, metric, key):
    node      key = node      calls that entered the node (once per call)
    nomatch / noinput   key = node
    intent    key = intent ('' when none was recognised) for each spoken caller turn
    left      key = node      abandoned calls, by the node they were left at
Both stores (SQLite here, PostgreSQL in postgres.py) apply exactly these rules.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from voicebot.records.metrics import classify

__all__ = ["CallSummary", "FLAG_KINDS", "day_of", "rollups_for_event"]

FLAG_KINDS = {"queue_joined": "queued", "agent_answered": "to_person", "transferred": "to_person",
              "caller_hangup": "left_early"}
ABANDONED = ("abandoned_in_bot", "abandoned_in_queue")


def day_of(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


@dataclass
class CallSummary:
    """A call's running summary (cached by the writer; rebuilt from the calls row after a restart)."""

    dialplan: str = ""
    lang: str = ""
    node: str = ""
    flags: set[str] = field(default_factory=set)
    visited: set[str] = field(default_factory=set)

    def kinds(self) -> list[str]:
        """The event kinds classify() needs, from the flags."""
        back = {"queued": "queue_joined", "to_person": "agent_answered", "left_early": "caller_hangup"}
        return [back[flag] for flag in self.flags]

    def final_class(self, outcome: str) -> str:
        return classify(outcome, self.kinds())


def rollups_for_event(summary: CallSummary, kind: str, data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Update `summary` for one event; the (metric, key) counters it adds one to."""
    node = data.get("node")
    if isinstance(node, str) and node:
        summary.node = node
    if kind == "language" and isinstance(data.get("lang"), str):
        summary.lang = data["lang"]
    if kind in FLAG_KINDS:
        summary.flags.add(FLAG_KINDS[kind])
    if kind == "node" and isinstance(node, str) and node and node not in summary.visited:
        summary.visited.add(node)
        return [("node", node)]
    if kind in ("nomatch", "noinput") and isinstance(node, str):
        return [(kind, node)]
    if kind == "caller" and data.get("kind") not in ("dtmf", "nomatch") and data.get("text") not in ("", None):
        intent = data.get("intent")
        return [("intent", intent if isinstance(intent, str) else "")]
    return []
