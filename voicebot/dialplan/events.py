"""Events the interpreter reacts to: what the caller, the session or the outside world did."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

__all__ = [
    "AgentAnswered",
    "CallContext",
    "CallStarted",
    "Event",
    "Hangup",
    "Heard",
    "Keys",
    "KnowledgeHit",
    "KnowledgeResult",
    "NoInput",
    "NoMatch",
    "QueueUpdate",
    "TransferFailed",
    "WebhookResult",
]


@dataclass(frozen=True)
class CallContext:
    """Who is calling whom: available to templates as `caller` (number, dnis, lang, channel, profile...)."""

    caller: str = ""
    dnis: str = ""
    lang: str | None = None
    channel: str = "text"
    call_id: str = ""
    profile: dict[str, Any] = field(default_factory=dict)
    private: bool = False  # the caller asked for privacy (Privacy: id): the number stays out of logs
    original_called: str = ""  # the number first dialled when the call was forwarded (Diversion/History-Info)
    redirect_reason: str = ""  # why it was forwarded (user-busy, no-answer, unconditional...)


@dataclass(frozen=True)
class CallStarted:
    context: CallContext


@dataclass(frozen=True)
class Heard:
    """One recognised utterance with its NLU reading; `entities` maps entity type -> normalised value."""

    text: str
    intent: str | None = None
    entities: dict[str, Any] = field(default_factory=dict)
    confidence: float = 1.0
    lang: str | None = None


@dataclass(frozen=True)
class Keys:
    """DTMF digits, collected by the session up to max_digits or the terminator."""

    digits: str


@dataclass(frozen=True)
class NoInput:
    """The listen timed out in silence."""


@dataclass(frozen=True)
class NoMatch:
    """Something was heard but nothing could be recognised; `lang`: the language it sounded like, if the recogniser
    could tell (a Mandarin caller is answered in Mandarin even when the words were not understood)."""

    lang: str | None = None


@dataclass(frozen=True)
class WebhookResult:
    ok: bool
    data: Any = None
    error: str | None = None


@dataclass(frozen=True)
class KnowledgeHit:
    """One article found for an Answer: what to speak and what the call record keeps (id, version, score)."""

    article: str
    version: int
    title: str
    short_answer: str
    more: str
    score: float


@dataclass(frozen=True)
class KnowledgeResult:
    """The knowledge base's best articles for an Answer, best first (empty: nothing in scope)."""

    hits: tuple[KnowledgeHit, ...] = ()
    query: str = ""


@dataclass(frozen=True)
class QueueUpdate:
    """Position in the queue and the estimated wait (`ewt_s` < 0: no data yet).

    `announcement` is the ACD's own wording ("You are number 2 in line; the wait is about 3 to 5 minutes"),
    spoken instead of the dialplan's default phrase when present.
    """

    position: int
    ewt_s: float
    announcement: str | None = None
    told_s: tuple[float, float] | None = None  # the range `announcement` says, in seconds (for the call record)


@dataclass(frozen=True)
class AgentAnswered:
    agent: str = ""


@dataclass(frozen=True)
class TransferFailed:
    reason: str = ""


@dataclass(frozen=True)
class Hangup:
    """The caller hung up."""


Event = Union[
    CallStarted, Heard, Keys, NoInput, NoMatch, WebhookResult, KnowledgeResult, QueueUpdate, AgentAnswered,
    TransferFailed, Hangup,
]
