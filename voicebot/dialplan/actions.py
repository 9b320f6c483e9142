"""Actions the interpreter asks the session to perform, in order."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Union

if TYPE_CHECKING:
    from voicebot.dialplan.early_endpoint import EarlyEndpoint
    from voicebot.speech.grammar import Grammar

__all__ = [
    "Action",
    "Answer",
    "Enqueue",
    "Hangup",
    "LeaveQueue",
    "Listen",
    "LogEvent",
    "Say",
    "SetRecording",
    "Transfer",
    "Webhook",
    "action_to_dict",
]


@dataclass(frozen=True)
class Say:
    """Speak `text` (or play `audio`). `parts` splits it at SSML-lite pauses: str = words, int = pause ms."""

    text: str
    lang: str
    barge_in: Literal["none", "dtmf", "speech"] = "speech"
    audio: str | None = None
    parts: tuple[str | int, ...] = ()


@dataclass(frozen=True)
class Listen:
    """Open the recogniser and/or DTMF collector; the session answers with Heard, Keys, NoInput or NoMatch."""

    mode: Literal["speech", "dtmf", "both"]
    timeout_ms: int = 5000
    end_silence_ms: int = 800
    max_digits: int | None = None
    terminator: str | None = "#"
    hints: tuple[str, ...] = ()
    lang: str = "en-US"
    early: EarlyEndpoint | None = None  # what lets the turn end after a short silence (None: end_silence_ms only)
    grammar: Grammar | None = None  # the answers an ask expects: recognised against first (voicebot.speech.grammar)


@dataclass(frozen=True)
class Webhook:
    name: str | None
    url: str | None
    method: str
    args: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # never in logs, even as ${NAME} refs
    timeout_s: float = 3.0
    retries: int = 0


@dataclass(frozen=True)
class Answer:
    """Look the caller's question up in the knowledge base; the session answers with KnowledgeResult."""

    query: str  # what the caller asked ("" after a keypad choice: the tags are the question)
    lang: str
    collection: str  # knowledge/<collection>/
    tags: tuple[str, ...] = ()
    top_k: int = 3


@dataclass(frozen=True)
class Transfer:
    """Blind transfer to a SIP URI or number, carrying context for the agent."""

    target: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Enqueue:
    """Put the caller in an ACD queue; the session reports QueueUpdate, AgentAnswered or TransferFailed."""

    queue: str
    skills: tuple[str, ...] = ()
    priority: int = 0
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LeaveQueue:
    queue: str
    reason: str = "callback"


@dataclass(frozen=True)
class SetRecording:
    """Pause (sensitive input) or resume the call recording."""

    paused: bool


@dataclass(frozen=True)
class Hangup:
    reason: str = "completed"


@dataclass(frozen=True)
class LogEvent:
    """A call-record entry: node entered, slot filled (masked if sensitive), errors."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


Action = Union[Say, Listen, Webhook, Answer, Transfer, Enqueue, LeaveQueue, SetRecording, Hangup, LogEvent]


def action_to_dict(action: Action) -> dict[str, Any]:
    """A JSON-able view: {"action": "Say", ...fields}."""
    return {"action": type(action).__name__, **asdict(action)}
