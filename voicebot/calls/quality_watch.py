"""Live quality checks on a call's transcript as it is written: each bot, caller or agent line goes through the
industry policy (voicebot.compliance.quality); an alert becomes a `quality` event of the call record and is
handed to `on_alert` (the server tells the supervisors). Lines are already redacted when they arrive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from voicebot.compliance.quality import LiveQualityCheck, QualityAlert, Said

Sink = Callable[[dict[str, Any]], None]


def quality_sink(check: LiveQualityCheck, record: Sink | None,
                 on_alert: Callable[[QualityAlert], None] | None = None) -> Sink:
    """A transcript sink that records each entry (when `record` is given), then checks spoken lines."""

    def sink(entry: dict[str, Any]) -> None:
        if record is not None:
            record(entry)
        who, text = entry.get("who"), entry.get("text")
        if entry.get("event") or who not in ("bot", "caller", "agent") or not isinstance(text, str) or not text:
            return
        at = float(entry.get("t") or 0.0)
        for alert in check.heard(Said(str(who), text, at, at)):
            if record is not None:
                record({"t": at, "event": "quality", "kind": alert.kind, "rule": alert.rule,
                        "policy": alert.policy, "speaker": alert.speaker, "detail": alert.detail})
            if on_alert is not None:
                on_alert(alert)

    return sink
