"""Process-wide totals of the live transcripts of bridged calls, for /metrics (issue 19).

A line is dropped (never written, pushed or checked) for one of :data:`DROP_REASONS`: ``queue_full`` (the speech
workers were saturated and the bounded queue let its oldest utterance go), ``too_old`` (it waited longer than the
queue's max age for a free worker), ``failed`` (the recogniser failed on it), ``record_closed`` (recognised after
the call's record had closed). Pure counting, on the event loop's thread; rendered as Prometheus text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DROP_REASONS", "LiveTotals", "drop_reason"]

DROP_REASONS = ("queue_full", "too_old", "failed", "record_closed")


def drop_reason(text: str) -> str:
    """The metric label of a drop reason as LiveAsr and LiveCall tell it ("queue full" -> "queue_full")."""
    return text.replace(" ", "_")


@dataclass
class LiveTotals:
    calls: int = 0
    lines: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))

    def drop(self, reason: str) -> None:
        label = drop_reason(reason)
        self.dropped[label] = self.dropped.get(label, 0) + 1

    def prometheus(self) -> str:
        """Counters: bridged calls followed, lines written, lines dropped by reason (every reason, zeros too)."""
        lines = ["# HELP voicebot_live_transcript_calls_total Bridged calls followed by a live transcript",
                 "# TYPE voicebot_live_transcript_calls_total counter",
                 f"voicebot_live_transcript_calls_total {self.calls}",
                 "# HELP voicebot_live_transcript_lines_total Live transcript lines written to call records",
                 "# TYPE voicebot_live_transcript_lines_total counter",
                 f"voicebot_live_transcript_lines_total {self.lines}",
                 "# HELP voicebot_live_transcript_lines_dropped_total Live transcript utterances dropped unwritten, "
                 "by reason",
                 "# TYPE voicebot_live_transcript_lines_dropped_total counter"]
        lines += [f'voicebot_live_transcript_lines_dropped_total{{reason="{reason}"}} {count}'
                  for reason, count in self.dropped.items()]
        return "\n".join(lines) + "\n"
