"""Bot-side Prometheus metrics, fed by the same events as the call records: calls by how they ended (contained,
transferred, abandoned, ...), caller turns, nomatch/noinput, and the reply latency the bot measured per turn.
Pure counting; the text is served by the API's /metrics."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["BotMetrics", "classify"]

LATENCY_BUCKETS_MS = (100, 200, 300, 400, 500, 700, 1000, 1500, 2000, 3000, 5000)


def classify(outcome: str, kinds: Iterable[str], ended: bool = True) -> str:
    """How a call ended, as voicebot/records/analytics.py classifies it."""
    seen = set(kinds)
    if seen & {"agent_answered", "transferred"}:
        return "transferred"
    if "queue_joined" in seen and "caller_hangup" in seen:
        return "abandoned_in_queue"
    if outcome == "callback":
        return "callback"
    if "queue_joined" in seen:
        return "queued_not_answered"
    if "caller_hangup" in seen:
        return "abandoned_in_bot"
    if outcome == "completed":
        return "contained"
    return "other" if ended else "in_progress_or_lost"


class BotMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kinds: dict[str, set[str]] = {}
        self.calls_started = 0
        self.calls_ended: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self._latency = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        self._latency_sum = 0.0
        self._latency_count = 0

    def started(self, call_id: str) -> None:
        with self._lock:
            self.calls_started += 1
            self._kinds[call_id] = set()

    def event(self, call_id: str, kind: str, data: Mapping[str, Any]) -> None:
        with self._lock:
            self._kinds.setdefault(call_id, set()).add(kind)
            if kind in ("caller", "nomatch", "noinput"):
                self.events[kind] += 1
            if kind == "caller" and data.get("kind") == "nomatch":
                self.events["asr_rejected"] += 1

    def ended(self, call_id: str, outcome: str, turns: Iterable[Mapping[str, Any]] = ()) -> None:
        with self._lock:
            kinds = self._kinds.pop(call_id, set())
            self.calls_ended[classify(outcome, kinds)] += 1
            for turn in turns:
                reply_ms = turn.get("tts_first_ms")
                if isinstance(reply_ms, (int, float)) and reply_ms > 0:
                    self._observe(float(turn.get("endpoint_ms") or 0.0) + float(reply_ms))

    def _observe(self, ms: float) -> None:
        index = next((i for i, bound in enumerate(LATENCY_BUCKETS_MS) if ms <= bound), len(LATENCY_BUCKETS_MS))
        self._latency[index] += 1
        self._latency_sum += ms / 1000
        self._latency_count += 1

    def prometheus(self) -> str:
        with self._lock:
            lines = ["# HELP voicebot_bot_calls_started_total Calls a dialplan session started",
                     "# TYPE voicebot_bot_calls_started_total counter",
                     f"voicebot_bot_calls_started_total {self.calls_started}",
                     "# HELP voicebot_bot_calls_ended_total Calls ended, by how (contained: the bot finished it)",
                     "# TYPE voicebot_bot_calls_ended_total counter"]
            for how in ("contained", "transferred", "abandoned_in_bot", "abandoned_in_queue", "callback",
                        "queued_not_answered", "other"):
                lines.append(f'voicebot_bot_calls_ended_total{{how="{how}"}} {self.calls_ended[how]}')
            lines += ["# HELP voicebot_bot_turns_total Caller turns heard, nomatch and noinput events",
                      "# TYPE voicebot_bot_turns_total counter"]
            for kind in ("caller", "nomatch", "noinput", "asr_rejected"):
                lines.append(f'voicebot_bot_turns_total{{kind="{kind}"}} {self.events[kind]}')
            lines += ["# HELP voicebot_bot_reply_seconds End of the caller's speech to the bot's first reply "
                      "audio, as the bot measured it (endpoint silence + recognition + TTS)",
                      "# TYPE voicebot_bot_reply_seconds histogram"]
            running = 0
            for bound, count in zip(LATENCY_BUCKETS_MS, self._latency):
                running += count
                lines.append(f'voicebot_bot_reply_seconds_bucket{{le="{bound / 1000:g}"}} {running}')
            lines.append(f'voicebot_bot_reply_seconds_bucket{{le="+Inf"}} {self._latency_count}')
            lines.append(f"voicebot_bot_reply_seconds_sum {self._latency_sum:.3f}")
            lines.append(f"voicebot_bot_reply_seconds_count {self._latency_count}")
        return "\n".join(lines) + "\n"
