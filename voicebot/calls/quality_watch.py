"""Live quality checks on a call's transcript as it is written: each bot, caller or agent line goes through the
industry policy (voicebot.compliance.quality); an alert becomes a `quality` event of the call record and is
handed to `on_alert` (the server tells the supervisors). Lines are already redacted when they arrive; the live
transcript of a bridged call (voicebot.handoff.live_transcript) writes its caller and agent lines here too."""

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
        start = min(at, float(entry.get("start") or at))  # live lines of a bridged call carry their start
        for alert in check.heard(Said(str(who), text, start, at)):
            if record is not None:
                record({"t": at, "event": "quality", "kind": alert.kind, "rule": alert.rule,
                        "policy": alert.policy, "speaker": alert.speaker, "detail": alert.detail})
            if on_alert is not None:
                on_alert(alert)

    return sink
