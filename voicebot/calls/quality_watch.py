"""Live quality checks on a call's transcript as it is written: an observer of the call's events that puts each
bot, caller or agent line through the industry policy (voicebot.compliance.quality) and publishes every alert as a
`QualityFlagged` event (the call record keeps it as a `quality` event; the server tells the supervisors). Lines are
already redacted when they arrive."""

from __future__ import annotations

from collections.abc import Callable

from voicebot.calls.events import CallEvent, Line, Observer, QualityFlagged
from voicebot.compliance.quality import LiveQualityCheck, Said


def quality_observer(check: LiveQualityCheck, publish: Callable[[CallEvent], None]) -> Observer:
    """An observer that checks each spoken line and publishes what the check flags (through ``publish``)."""

    def observe(event: CallEvent) -> None:
        if not isinstance(event, Line) or not event.spoken:
            return
        for alert in check.heard(Said(event.who, event.text, event.at, event.at)):
            publish(QualityFlagged(event.at, alert.kind, alert.rule, alert.policy, alert.speaker, alert.detail))

    return observe
