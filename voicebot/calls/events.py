"""A call's typed event stream: what happened on one call, as frozen events, and the small bus that hands each
event to every observer (the call-record writer, live quality checks, browser captions, supervisor alerts).

Observers are plain callables. They run in the order they subscribed, each event delivered to all of them before
the next one (an event published by an observer is queued behind the one being delivered), and an observer that
raises is logged and skipped: it never stops the other observers or the call. Pure logic: no I/O besides that log.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from voicebot.compliance.alerts import QualityAlert

log = logging.getLogger("voicebot.calls.events")

def _frozen(values: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True)
class CallStarted:
    """The call is answered and its session is about to run."""

    call_id: str
    channel: str  # "sip", "webrtc", ...
    caller: str = ""
    callee: str = ""
    dialplan: str = ""


@dataclass(frozen=True)
class Line:
    """One line of the conversation as the transcript keeps it: ``who`` is bot, caller, agent, system or event;
    ``text`` and ``extras`` are already redacted (card numbers, IDs, phone numbers and e-mails masked)."""

    at: float  # time.time() of the line, rounded to the millisecond
    who: str
    text: str
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extras", _frozen(self.extras))

    @property
    def spoken(self) -> bool:
        """A line someone said (bot, caller or agent), not a system line, a named event or an empty turn."""
        return self.who in ("bot", "caller", "agent") and bool(self.text) and not self.extras.get("event")

    def entry(self) -> dict[str, Any]:
        """The transcript entry: {"t", "who", "text", **extras}."""
        return {"t": self.at, "who": self.who, "text": self.text, **self.extras}


@dataclass(frozen=True)
class Measured:
    """Figures for the call record only (e.g. a turn's reply, ASR and NLU milliseconds), not a conversation line."""

    at: float
    name: str
    figures: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "figures", _frozen(self.figures))

    def entry(self) -> dict[str, Any]:
        return {"t": self.at, "event": self.name, **self.figures}


@dataclass(frozen=True)
class Noted:
    """A named event for the call record only, with its (already redacted) data: e.g. the agent assist shown."""

    at: float
    name: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", _frozen(self.data))

    def entry(self) -> dict[str, Any]:
        return {"t": self.at, "event": self.name, **self.data}


@dataclass(frozen=True)
class Spoke:
    """Someone spoke on a bridged call (voice activity on their leg, known before and whatever the recognition
    makes of it): for the timed quality rules (silence, talk-over) only, not kept in the call record."""

    at: float  # when the utterance ended
    who: str  # caller or agent
    start: float


@dataclass(frozen=True)
class CallEnded:
    """The call is over and torn down: the record's outcome and how it ended."""

    call_id: str
    outcome: str
    end_reason: str
    duration_s: float | None = None
    dialplan: str | None = None
    recording: str | None = None  # the recording's path
    extra: Mapping[str, Any] = field(default_factory=dict)  # turns and the leg's media figures

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", _frozen(self.extra))


CallEvent = CallStarted | Line | Measured | Noted | QualityAlert | Spoke | CallEnded
Observer = Callable[[CallEvent], None]


def record_entry(event: CallEvent) -> dict[str, Any] | None:
    """The event as an entry of the call record's event list; None for the start and the end (their own rows) and
    for voice activity (`Spoke`)."""
    if isinstance(event, (Line, Measured, Noted, QualityAlert)):
        return event.entry()
    return None


def entry_event(entry: Mapping[str, Any]) -> Line | Noted | Spoke:
    """A transcript entry written from outside the session (a bridged call's live lines, the agent assist):
    {"t", "who", "text", ...} is a Line, {"t", "event", ...} a Noted event, {"t", "spoke", "start"} a Spoke."""
    at = float(entry.get("t") or 0.0)
    if "spoke" in entry:
        return Spoke(at, str(entry["spoke"]), float(entry.get("start") or at))
    if "who" in entry:
        extras = {k: v for k, v in entry.items() if k not in ("t", "who", "text")}
        return Line(at, str(entry["who"]), str(entry.get("text") or ""), extras)
    return Noted(at, str(entry.get("event") or "event"), {k: v for k, v in entry.items() if k not in ("t", "event")})


def entry_sink(bus: CallEvents) -> Callable[[dict[str, Any]], None]:
    """A function that publishes each transcript entry given to it on ``bus`` (as ``entry_event``)."""

    def publish(entry: dict[str, Any]) -> None:
        bus.publish(entry_event(entry))

    return publish


class CallEvents:
    """One call's event bus: ``subscribe(observer)`` returns the function that unsubscribes it."""

    def __init__(self, call_id: str = "") -> None:
        self.call_id = call_id
        self._observers: list[Observer] = []
        self._pending: deque[CallEvent] = deque()
        self._delivering = False
        self.failures = 0

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        self._observers.append(observer)

        def unsubscribe() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return unsubscribe

    def publish(self, event: CallEvent) -> None:
        """Deliver ``event`` to every observer, in subscription order; from inside an observer it is queued."""
        self._pending.append(event)
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._pending:
                current = self._pending.popleft()
                for observer in tuple(self._observers):
                    self._deliver(observer, current)
        finally:
            self._delivering = False

    def _deliver(self, observer: Observer, event: CallEvent) -> None:
        try:
            observer(event)
        except Exception:  # noqa: BLE001 - one observer's bug must not cost the others or the call
            self.failures += 1
            log.exception("call event observer failed", extra={"fields": {
                "call_id": self.call_id, "event": type(event).__name__, "observer": _name(observer)}})


def _name(observer: Observer) -> str:
    return str(getattr(observer, "__qualname__", None) or type(observer).__qualname__)
