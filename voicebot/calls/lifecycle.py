"""CallLifecycle: one object per call that owns its leg (and Channel), session, recorder, record and event bus, and
tears the call down the same way for every transport, whatever happened during it.

    async with CallLifecycle(leg, record, services) as call:   # the exit always tears the call down
        ...answer...                                          # (an unanswered call is still ended and logged)
        call.start(caller=..., callee=..., dialplan=...)      # CallStarted: the record opens, the recording starts
        await call.run(session)                               # DialplanSession (quality-checked) or DemoDtmfSession

A dialplan session's call is quality-checked live (voicebot.calls.quality_watch): its lines as they are written, and
the timed rules (dead air, a wait without news, talk-over) by the process's one quality ticker, which the teardown
tells to stop watching the call.

Teardown: the recording is stopped and closed, the leg released (media freed, a leg left up hung up), the outcome
settled (a caller this node handed over keeps the hand-over's outcome), `CallEnded` published (the journal closes
the record, then the after-call hook opens a case) and the "call ended" line logged. Each step is guarded: one that
fails is logged and the others still run. The server's collaborators come in through `CallServices`: this module
never imports the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from voicebot.calls.conversation import DialplanSession
from voicebot.calls.events import CallEnded, CallEvent, CallEvents, CallStarted, entry_sink
from voicebot.compliance.alerts import QualityAlert
from voicebot.calls.keypad_session import CallRecord
from voicebot.calls.quality_watch import QualityTicker, quality_observer, shared_quality_ticker
from voicebot.calls.recording import CallRecorder, RecordingError
from voicebot.channels.base import Channel
from voicebot.compliance.lint import Policy, policies_for
from voicebot.compliance.quality import LiveQualityCheck
from voicebot.records.journal import CallJournal

log = logging.getLogger("voicebot.calls.lifecycle")

QualityAlertHook = Callable[[str, str, QualityAlert], None]  # (call_id, dialplan, flag)


@dataclass(frozen=True)
class LegEnd:
    """How a leg ended: for the call record (``end_reason``, ``duration_s``, ``media`` figures) and the log line
    (``message``, the ``log_media`` fields)."""

    end_reason: str
    message: str = "call ended"
    duration_s: float | None = None
    media: Mapping[str, Any] = field(default_factory=dict)
    log_media: Mapping[str, Any] = field(default_factory=dict)


class Leg(Protocol):
    """What the lifecycle needs from the caller's leg besides its Channel (voicebot.calls.legs: SIP, browser)."""

    kind: str  # the record's channel: "sip", "webrtc"

    @property
    def channel(self) -> Channel: ...

    def record_to(self, directory: Path) -> CallRecorder:
        """Start the stereo recording (raises RecordingError when the file cannot be made)."""

    def stop_recording(self) -> None: ...

    async def release(self) -> None:
        """Free the leg's media and end its signalling if the session left it up (idempotent)."""

    def ended(self) -> LegEnd: ...


@dataclass(frozen=True)
class CallServices:
    """What a call is wired to. ``journal`` None: no call record (and no after-call hook); ``recording_dir`` None:
    not recorded; ``handed_over(call_id)``: the outcome when this node handed the waiting caller over (drain);
    ``quality_ticker`` None: the process-wide one (real time, once a second)."""

    journal: CallJournal | None = None
    after_call: Callable[[str], None] | None = None
    policies: Sequence[Policy] = ()
    on_quality_alert: QualityAlertHook | None = None
    recording_dir: Path | None = None
    handed_over: Callable[[str], str | None] | None = None
    quality_ticker: QualityTicker | None = None


class Session(Protocol):
    async def run(self) -> Any: ...


class CallLifecycle:
    """One call from offer to teardown; see the module docstring."""

    def __init__(self, leg: Leg, record: CallRecord, services: CallServices) -> None:
        self.leg = leg
        self.record = record
        self.services = services
        self.call_id = record.call_id
        self.events = CallEvents(self.call_id)
        self.entry_sink = entry_sink(self.events)  # for lines written from outside the session (live transcript)
        self.recorder: CallRecorder | None = None
        self.session: Session | None = None
        self.quality: LiveQualityCheck | None = None
        self._unwatch: Callable[[], None] | None = None  # stops the quality ticker judging this call
        self._ended = False
        if services.journal is not None:
            self.events.subscribe(services.journal.observer(self.call_id))
            if services.after_call is not None:  # after the journal: the case is opened once the record is closed
                self.events.subscribe(self._after_call)
        if services.on_quality_alert is not None:
            self.events.subscribe(self._quality_alert)

    async def __aenter__(self) -> CallLifecycle:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.end()

    # ------------------------------------------------------------------ the call
    def start(self, *, caller: str = "", callee: str = "", dialplan: str = "") -> None:
        """The call is answered: open its record and start the recording (a recording that cannot be made is
        noted in the record; the caller is served anyway)."""
        self.record.dialplan = dialplan
        self.events.publish(CallStarted(self.call_id, self.leg.kind, caller, callee, dialplan))
        if self.services.recording_dir is None:
            return
        try:
            self.recorder = self.leg.record_to(self.services.recording_dir)
        except RecordingError as exc:
            self.record.recording = {"error": str(exc)}
            log.warning("call not recorded: %s", exc, extra={"fields": {"call_id": self.call_id}})

    def watch_quality(self, dialplan: str) -> LiveQualityCheck:
        """Check every spoken line against the industry policies of ``dialplan`` as it is said, and (inside a
        running event loop) the timed rules on each tick of the quality ticker until the call ends; the call counts
        as answered now (on the ticker's clock)."""
        ticker = self.services.quality_ticker or shared_quality_ticker()
        check = self.quality = LiveQualityCheck(policies_for(dialplan, list(self.services.policies)))
        check.answered(ticker.clock())
        self.events.subscribe(quality_observer(check, self.events.publish))
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return check
        self._unwatch = ticker.watch(check, self.events.publish)
        return check

    async def run(self, session: Session) -> CallRecord:
        """Run the call's session until the call ends; a dialplan session's transcript and turns go to the record
        (its lines reach this call's observers: build it with ``events=self.events``)."""
        self.session = session
        dialplan = session if isinstance(session, DialplanSession) else None
        if dialplan is not None:
            if dialplan.transcript.events is not self.events:
                dialplan.transcript.events.subscribe(self.events.publish)
            self.watch_quality(self.record.dialplan)
        try:
            outcome = await session.run()
            if isinstance(outcome, str):
                self.record.outcome = outcome
        finally:
            if dialplan is not None:
                self.record.transcript = dialplan.transcript.entries
                self.record.turns = [dict(vars(turn)) for turn in dialplan.turns]
        return self.record

    # ------------------------------------------------------------------ teardown
    async def end(self) -> None:
        """Tear the call down (once): recording, leg, outcome, CallEnded, the log line."""
        if self._ended:
            return
        self._ended = True
        if self._unwatch is not None:
            self._unwatch()
        if self.recorder is not None:
            try:
                self.leg.stop_recording()
            except Exception:  # noqa: BLE001 - teardown goes on
                log.exception("stopping the recording failed", extra={"fields": {"call_id": self.call_id}})
            self.recorder.close()  # never raises: a failure is kept in the summary
            self.record.recording = self.recorder.summary
        cancelled: asyncio.CancelledError | None = None
        try:
            await self.leg.release()
        except asyncio.CancelledError as exc:  # cancelled while hanging up: the record and the log first
            cancelled = exc
        except Exception:  # noqa: BLE001 - the record and the log line still come
            log.exception("releasing the call's leg failed", extra={"fields": {"call_id": self.call_id}})
        if self.services.handed_over is not None:
            handed = self.services.handed_over(self.call_id)
            if handed:
                self.record.outcome = handed
        record = self.record
        ended = self.leg.ended()
        self.events.publish(CallEnded(
            self.call_id, record.outcome, ended.end_reason, duration_s=ended.duration_s,
            dialplan=record.dialplan or None, recording=(record.recording or {}).get("path"),
            extra={"turns": record.turns, **ended.media}))
        log.info(ended.message, extra={"fields": {
            "call_id": self.call_id, "from": record.from_, "to": record.to, "duration_s": ended.duration_s, "digits": record.digits,
            "outcome": record.outcome, "dialplan": record.dialplan, "transcript": record.transcript,
            "turns": record.turns, "recording": record.recording, "end_reason": ended.end_reason,
            **ended.log_media}})
        if cancelled is not None:
            raise cancelled

    # ------------------------------------------------------------------ observers
    def _after_call(self, event: CallEvent) -> None:
        if isinstance(event, CallEnded) and self.services.after_call is not None:
            self.services.after_call(self.call_id)

    def _quality_alert(self, event: CallEvent) -> None:
        if isinstance(event, QualityAlert) and self.services.on_quality_alert is not None:
            self.services.on_quality_alert(self.call_id, self.record.dialplan, event)
