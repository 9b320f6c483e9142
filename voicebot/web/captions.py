"""Live captions for browser calls: an observer of the call's events that shows each bot and caller line on the
caller's page."""

from __future__ import annotations

from typing import Callable

from voicebot.calls.events import CallEvent, Line, Observer

CaptionSink = Callable[[str, str], None]  # (who: "bot" | "caller", text)


def caption_observer(sink: CaptionSink) -> Observer:
    """Forward what the bot said and heard (already PII-masked, empty turns left out) to ``sink``."""

    def observe(event: CallEvent) -> None:
        if isinstance(event, Line) and event.who in ("bot", "caller") and event.text:
            sink(event.who, event.text)

    return observe
