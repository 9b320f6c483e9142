"""Turn latency at the caller, from a `CallTrace` (bench/rtp_callers.py) and its `Script`; pure numpy.

A turn's latency runs from the moment the caller *sent* the frame holding its last voiced sample to the *arrival*
of the first packet of the bot's reply: the first voiced packet (RMS above VOICED_RMS) that starts a new talk spurt
(at least SPURT_GAP_FRAMES quiet packets before it), arriving before the caller's next turn starts (or, for the last
turn, within `last_turn_window_s`). A turn with no such packet is a failure: the caller got no answer. When the
bot was still talking as the caller finished (its greeting, or a reply to half an utterance), that stretch is not
the reply: the reply is the next spurt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.caller_scripts import Script
from bench.rtp_callers import FRAME, CallTrace

VOICED_RMS = 300.0
SPURT_GAP_FRAMES = 5  # 100 ms of quiet before a new talk spurt


@dataclass(frozen=True)
class TurnResult:
    label: str
    full_endpoint: bool
    latency_ms: float | None  # None: no reply (a failure)
    bot_was_talking: bool  # the bot's audio was arriving when the caller finished
    late_reply_ms: float | None = None  # a failure's reply that came only after the caller's next turn had begun


def spurt_starts(voiced: np.ndarray, gap: int = SPURT_GAP_FRAMES) -> np.ndarray:
    """Indices of voiced packets preceded by at least `gap` unvoiced ones (or by the start)."""
    quiet_run = np.zeros(len(voiced), np.int64)
    run = gap  # the call's start counts as quiet
    for index, is_voiced in enumerate(voiced):
        quiet_run[index] = run
        run = 0 if is_voiced else run + 1
    return np.flatnonzero(voiced & (quiet_run >= gap))


def measure_turns(trace: CallTrace, script: Script, last_turn_window_s: float = 4.0) -> list[TurnResult]:
    """One result per scripted turn; every turn of an unanswered call is a failure."""
    results = []
    if not trace.ok or len(trace.received_at) == 0:
        return [TurnResult(label, full, None, False) for label, full in zip(script.labels, script.full_endpoint)]
    voiced = trace.received_rms > VOICED_RMS
    starts = spurt_starts(voiced)
    start_times = trace.received_at[starts]
    for turn, (end, label, full) in enumerate(zip(script.turn_ends, script.labels, script.full_endpoint)):
        last_frame = max(0, (end - 1) // FRAME)
        if last_frame >= len(trace.frame_sent_at) or np.isnan(trace.frame_sent_at[last_frame]):
            results.append(TurnResult(label, full, None, False))  # the call ended before the caller got there
            continue
        spoke_at = float(trace.frame_sent_at[last_frame])
        if turn + 1 < len(script.turn_starts):
            next_frame = script.turn_starts[turn + 1] // FRAME
            deadline = (float(trace.frame_sent_at[next_frame]) if next_frame < len(trace.frame_sent_at)
                        and not np.isnan(trace.frame_sent_at[next_frame]) else spoke_at + last_turn_window_s)
        else:
            deadline = spoke_at + last_turn_window_s
        before = np.flatnonzero(trace.received_at <= spoke_at)
        talking = bool(len(before) and voiced[before[-max(1, min(len(before), 3)):]].any())
        replies = start_times[(start_times > spoke_at) & (start_times < deadline)]
        latency = (float(replies[0]) - spoke_at) * 1000 if len(replies) else None
        later = start_times[start_times >= deadline]
        late = (float(later[0]) - spoke_at) * 1000 if latency is None and len(later) else None
        results.append(TurnResult(label, full, latency, talking, late))
    return results


def percentile(values: list[float], q: float) -> float:
    """numpy percentile; failures enter as +inf where the caller wants them to count against the figure."""
    if not values:
        return float("nan")
    with np.errstate(invalid="ignore"):  # all failures: inf - inf inside the interpolation
        return float(np.percentile(np.array(values, dtype=float), q))
