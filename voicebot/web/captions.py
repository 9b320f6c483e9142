"""Live captions for browser calls: a session transcript that also shows each line on the caller's page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from voicebot.calls.conversation import DialplanSession, Transcript

CaptionSink = Callable[[str, str], None]  # (who: "bot" | "caller", text)


@dataclass
class CaptionedTranscript(Transcript):
    """A Transcript that forwards what the bot said and heard (already PII-masked) to ``sink``."""

    sink: CaptionSink | None = field(default=None, repr=False)

    def add(self, who: str, text: str, **extra: Any) -> None:
        super().add(who, text, **extra)
        if self.sink is not None and who in ("bot", "caller") and text:
            self.sink(who, text)


def caption_session(session: DialplanSession, sink: CaptionSink) -> None:
    """Show ``session``'s transcript live through ``sink`` (e.g. ``WebRtcChannel.caption``); call before run()."""
    session.transcript = CaptionedTranscript(entries=session.transcript.entries, sink=sink)
