"""What a caller waiting in a queue heard, from its `CallTrace` (bench/rtp_callers.py); pure numpy, no I/O.

The waiting starts at the first hold-music packet: loud enough (RMS above `LEVEL`) with almost no energy at or above
1 kHz (the generated hold melody's notes and their octave all lie below 800 Hz). Speech (an announcement) has a
clear share of energy above 1 kHz; an announcement is speech lasting at least `MIN_SPEECH_S` in all, its runs
joined unless at least `HOLD_BETWEEN_S` of hold music separates them (pauses between words and sentences of one
announcement carry no hold music).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.rtp_callers import FRAME_S, CallTrace

LEVEL = 150.0  # RMS of a frame that carries sound (the line noise of the callers' own side is not received)
HOLD_HIGH_BAND = 0.01  # hold melody: less than 1 % of its energy at or above 1 kHz
SPEECH_HIGH_BAND = 0.03
MIN_SPEECH_S = 0.6
HOLD_BETWEEN_S = 1.0
LATE_INTERARRIVAL_S = 0.040  # a packet 20 ms or more behind the previous one's slot
GAP_S = 0.060  # no packet for three slots: an audible drop-out
SILENCE_S = 1.0  # sound stops for this long (nothing playing although the caller still waits)


@dataclass(frozen=True)
class CallerHeard:
    """One waiting caller's side of the queue."""

    queued_s: float  # from the first hold-music packet to the last packet received
    packets: int  # received in that time
    late_packets: int  # interarrival > LATE_INTERARRIVAL_S
    gaps: int  # interarrival >= GAP_S
    longest_gap_ms: float
    announcements: int
    silences: int  # runs of frames below LEVEL lasting >= SILENCE_S
    longest_silence_s: float

    @property
    def packets_expected(self) -> float:
        return self.queued_s / FRAME_S


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs, end exclusive, of the True runs of `mask`."""
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def count_announcements(speech: np.ndarray, hold: np.ndarray) -> int:
    """Announcements: speech runs joined unless HOLD_BETWEEN_S of hold music lies between them, kept when their
    speech adds up to MIN_SPEECH_S."""
    hold_before = np.concatenate([[0], np.cumsum(hold.astype(np.int64))])  # hold frames before each index
    announcements: list[list[int]] = []  # [start, end, speech frames]
    for start, end in runs(speech):
        if announcements and hold_before[start] - hold_before[announcements[-1][1]] < HOLD_BETWEEN_S / FRAME_S:
            announcements[-1][1] = end
            announcements[-1][2] += end - start
        else:
            announcements.append([start, end, end - start])
    return sum(1 for _, _, frames in announcements if frames * FRAME_S >= MIN_SPEECH_S)


def heard_in_queue(trace: CallTrace) -> CallerHeard | None:
    """What the caller received from its first hold-music packet on; None when it never heard hold music."""
    loud = trace.received_rms > LEVEL
    hold = loud & (trace.received_high_band < HOLD_HIGH_BAND)
    if not hold.any():
        return None
    first = int(np.argmax(hold))
    at = trace.received_at[first:]
    interarrival = np.diff(at)
    speech = loud[first:] & (trace.received_high_band[first:] > SPEECH_HIGH_BAND)
    quiet = runs(~loud[first:])
    silences = [(end - start) * FRAME_S for start, end in quiet]
    return CallerHeard(
        queued_s=float(at[-1] - at[0]) if len(at) > 1 else 0.0,
        packets=len(at),
        late_packets=int((interarrival > LATE_INTERARRIVAL_S).sum()),
        gaps=int((interarrival >= GAP_S).sum()),
        longest_gap_ms=float(interarrival.max() * 1000) if len(interarrival) else 0.0,
        announcements=count_announcements(speech, hold[first:]),
        silences=sum(1 for s in silences if s >= SILENCE_S),
        longest_silence_s=max(silences, default=0.0),
    )
