"""Live quality checks on a call's transcript as it is written: an observer of the call's events that puts each
bot, caller or agent line through the industry policy (voicebot.compliance.quality) and publishes every alert (a
`QualityAlert`) on the bus (the call record keeps it as a `quality` event; the server tells the supervisors). Lines are
already redacted when they arrive; the live transcript of a bridged call (voicebot.handoff.live_transcript) writes
its caller and agent lines to the same call's events.

The timed rules (dead air, a wait without news, talk-over; voicebot.compliance.timing) are fed from the same bus:
the ``queue_joined`` / ``queue_left`` / ``agent_answered`` / ``transferred`` lines the session writes, the ``live_transcript`` note the
live transcript writes when it follows the bridge, the lines' times (a live line's ``start`` extra) and
`CallEnded`; one `QualityTicker` for all the calls of the process gives them the passing time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from voicebot.calls.events import (
    CallEnded,
    CallEvent,
    CallEvents,
    Line,
    Noted,
    Observer,
    Spoke,
    entry_sink,
    record_entry,
)
from voicebot.compliance.lint import Policy, policies_for
from voicebot.compliance.quality import LiveQualityCheck, QualityAlert, Said

Sink = Callable[[dict[str, Any]], None]
TICK_S = 1.0  # the timed rules are judged this often: an alert is at most this late

log = logging.getLogger("voicebot.calls.quality_watch")


def quality_observer(check: LiveQualityCheck, publish: Callable[[CallEvent], None]) -> Observer:
    """An observer that checks each spoken line and the call's steps, and publishes what the check flags."""

    def observe(event: CallEvent) -> None:
        if isinstance(event, CallEnded):
            check.ended()
            return
        if isinstance(event, Spoke):  # voice activity on a bridged leg: silence and talk-over before the words
            for alert in check.sounded(event.who, event.start, event.at):
                publish(alert)
            return
        if isinstance(event, Noted):
            if event.name == "live_transcript":
                check.transcribing()
            return
        if not isinstance(event, Line):
            return
        step = event.extras.get("event")
        if step == "queue_joined":
            check.queued(event.at)
        elif step == "queue_left":
            check.left_queue(event.at)
        elif step == "agent_answered":
            check.agent_answered(event.at)
        elif step == "transferred":  # the call left this server: nothing of it is ours to judge any more
            check.ended()
        if not event.spoken:
            return
        start = event.extras.get("start")  # live lines of a bridged call carry their start
        begun = min(event.at, float(start)) if isinstance(start, (int, float)) else event.at
        for alert in check.heard(Said(event.who, event.text, begun, event.at)):
            publish(alert)

    return observe


class QualityTicker:
    """One task for every watched call of the process: each ``every_s`` it reads ``clock`` once and judges each
    call's timed rules, publishing what they flag on that call's bus (a task per call would cost a wake-up per call
    per second). It runs while at least one call is watched and starts again with the next call."""

    def __init__(self, clock: Callable[[], float] = time.time, every_s: float = TICK_S) -> None:
        self.clock = clock
        self.every_s = every_s
        self._watched: dict[int, tuple[LiveQualityCheck, Callable[[CallEvent], None]]] = {}
        self._next = 0
        self.task: asyncio.Task[None] | None = None

    @property
    def watched(self) -> int:
        return len(self._watched)

    def watch(self, check: LiveQualityCheck, publish: Callable[[CallEvent], None]) -> Callable[[], None]:
        """Judge ``check`` on each tick until the returned function is called (the call's teardown calls it).
        Needs a running event loop."""
        loop = asyncio.get_running_loop()
        key = self._next
        self._next += 1
        self._watched[key] = (check, publish)
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self._run(), name="quality-ticker")

        def unwatch() -> None:
            self._watched.pop(key, None)

        return unwatch

    async def _run(self) -> None:
        while self._watched:
            await asyncio.sleep(self.every_s)
            now = self.clock()
            for check, publish in tuple(self._watched.values()):
                try:
                    alerts = check.tick(now)
                except Exception:  # noqa: BLE001 - one call's bug must not stop the others' checks
                    log.exception("timed quality rules failed")
                    continue
                for alert in alerts:
                    publish(alert)


_shared: QualityTicker | None = None


def shared_quality_ticker() -> QualityTicker:
    """The process-wide ticker (real time, once a second) that calls use unless given their own."""
    global _shared
    if _shared is None:
        _shared = QualityTicker()
    return _shared


def _sink_bus(check: LiveQualityCheck, record: Sink | None,
              on_alert: Callable[[QualityAlert], None] | None) -> CallEvents:
    """An event bus of its own for lines that belong to no running session: each entry and flag goes to
    ``record``, each line through ``check``, alerts to ``on_alert``."""
    bus = CallEvents()
    if record is not None:
        write = record

        def keep(event: CallEvent) -> None:
            entry = record_entry(event)
            if entry is not None:
                write(entry)

        bus.subscribe(keep)
    bus.subscribe(quality_observer(check, bus.publish))
    if on_alert is not None:
        alert = on_alert
        bus.subscribe(lambda event: alert(event) if isinstance(event, QualityAlert) else None)
    return bus


def quality_sink(check: LiveQualityCheck, record: Sink | None,
                 on_alert: Callable[[QualityAlert], None] | None = None) -> Sink:
    """A transcript-entry sink on an event bus of its own, for lines that belong to no running session (a bridged
    call's live transcript after its session ended): each entry and flag goes to ``record``, alerts to ``on_alert``.
    The timed rules are not run (see :func:`followed_call_sink`)."""
    return entry_sink(_sink_bus(check, record, on_alert))


class FollowedSink:
    """The sink of a followed call's live lines (its session gone): entries go to the record and the checks, and
    the timed rules (dead air on the bridge, talk-over) are judged on the quality ticker until `close`."""

    def __init__(self, check: LiveQualityCheck, bus: CallEvents, unwatch: Callable[[], None] | None) -> None:
        self.check = check
        self._publish = entry_sink(bus)
        self._unwatch = unwatch

    def __call__(self, entry: dict[str, Any]) -> None:
        self._publish(entry)

    def close(self) -> None:
        """The bridge ended: no more timed rules (a late line is still written and checked for its words)."""
        self.check.ended()
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None


def followed_call_sink(dialplan: str, policies: Sequence[Policy], record: Sink | None,
                       on_alert: Callable[[QualityAlert], None] | None = None, *,
                       ticker: QualityTicker | None = None) -> FollowedSink:
    """The sink for the live lines of a call whose session is gone (a callback the ACD placed to follow up a
    call), made when its agent and customer are bridged: judged by the policies of the dialplan that call ran
    (its record's), not only those for every dialplan (``dialplan`` "" (unknown) gets those alone); the bridge
    counts as answered by the agent now, and (inside a running event loop) the timed rules run on ``ticker``
    (None: the process-wide one) until the sink is closed."""
    ticker = ticker or shared_quality_ticker()
    check = LiveQualityCheck(policies_for(dialplan, list(policies)))
    check.agent_answered(ticker.clock())
    bus = _sink_bus(check, record, on_alert)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return FollowedSink(check, bus, None)
    return FollowedSink(check, bus, ticker.watch(check, bus.publish))
