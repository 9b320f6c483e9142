"""Live quality checks on a call's transcript as it is written: an observer of the call's events that puts each
bot, caller or agent line through the industry policy (voicebot.compliance.quality) and publishes every alert as a
`QualityFlagged` event (the call record keeps it as a `quality` event; the server tells the supervisors). Lines are
already redacted when they arrive; the live transcript of a bridged call (voicebot.handoff.live_transcript) writes
its caller and agent lines to the same call's events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from voicebot.calls.events import CallEvent, CallEvents, Line, Observer, QualityFlagged, entry_sink, record_entry
from voicebot.compliance.quality import LiveQualityCheck, Said

Sink = Callable[[dict[str, Any]], None]


def quality_observer(check: LiveQualityCheck, publish: Callable[[CallEvent], None]) -> Observer:
    """An observer that checks each spoken line and publishes what the check flags (through ``publish``)."""

    def observe(event: CallEvent) -> None:
        if not isinstance(event, Line) or not event.spoken:
            return
        start = event.extras.get("start")  # live lines of a bridged call carry their start
        begun = min(event.at, float(start)) if isinstance(start, (int, float)) else event.at
        for alert in check.heard(Said(event.who, event.text, begun, event.at)):
            publish(QualityFlagged(event.at, alert.kind, alert.rule, alert.policy, alert.speaker, alert.detail))

    return observe


def quality_sink(check: LiveQualityCheck, record: Sink | None,
                 on_alert: Callable[[QualityFlagged], None] | None = None) -> Sink:
    """A transcript-entry sink on an event bus of its own, for lines that belong to no running session (a bridged
    call's live transcript after its session ended): each entry and flag goes to ``record``, alerts to ``on_alert``."""
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
        bus.subscribe(lambda event: alert(event) if isinstance(event, QualityFlagged) else None)
    return entry_sink(bus)
