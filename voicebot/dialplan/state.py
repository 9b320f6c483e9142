"""The state of one call in a dialplan: a plain, JSON-serialisable dataclass (storable in Redis)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["State", "Step"]

Step = str
"""Where the call waits: enter, lookup, listen, ask, confirm, webhook, queue, callback_offer, transfer, ended."""


@dataclass
class State:
    dialplan: str
    node: str
    step: Step
    lang: str
    caller: dict[str, Any] = field(default_factory=dict)
    slots: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    stack: list[str] = field(default_factory=list)
    entities: dict[str, Any] = field(default_factory=dict)
    """Entities heard and not yet used to fill a slot: a later ask takes them instead of asking."""
    candidate: Any = None
    """A slot value waiting for the caller's confirmation."""
    last_intent: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    """Transcript: {"who": "bot"|"caller", "text", "node"}; sensitive answers are masked."""
    trail: list[str] = field(default_factory=list)
    """Nodes entered, in order (coverage and call records)."""
    recording_paused: bool = False
    recording_held: bool = False  # paused by a node's `recording: pause` (not by a sensitive ask)
    callback_offered: bool = False
    ended: bool = False
    end_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown State fields: {', '.join(sorted(unknown))}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> State:
        return cls.from_dict(json.loads(text))
