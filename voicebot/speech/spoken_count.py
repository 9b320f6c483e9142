"""How many separate words an utterance holds, from its pauses: the count of a digit string read digit by digit.

Pure numpy. Short-time energy (25 ms frames, 10 ms hop) against a threshold between the utterance's noise floor and
its speech level; voiced runs closer than `MIN_GAP_S` are one word ("six" has a stop closure inside it, "eight" a
release after one), runs shorter than `MIN_WORD_S` are clicks. The count is evidence, not the answer: callers who
run digits together ("four three three") give fewer runs than digits, so the recogniser only uses it to choose
between its own candidates when the decoder cannot (voicebot.speech.grammar_decode).
"""

from __future__ import annotations

import numpy as np

FRAME_S = 0.025
HOP_S = 0.010
MIN_GAP_S = 0.09  # a pause between two digits read one by one; stop closures inside a word are shorter
MIN_WORD_S = 0.08  # a spoken digit lasts 0.2-0.6 s; shorter voiced runs are clicks or breaths
# Threshold: this far up from the noise floor towards the speech level, in dB (floor and level: the 10th and 95th
# percentile frame energies). Chosen on the development speakers only (FSDD george/jackson/lucas, 180 strings of 4-16
# digits joined by 150-450 ms pauses, through G.711, seed 99): share 0.6 with gaps of 70-110 ms and words of 80-150 ms
# counted all 180 right; share 0.35 (gaps merged across the 150 ms pauses, clip noise counted as words) 135.
THRESHOLD_SHARE = 0.6
MIN_DYNAMIC_DB = 20.0  # less contrast between speech and floor: no pauses to count (noise, or one long word)


def word_spans(audio: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """(start, end) seconds of each word separated by pauses; empty when the audio has no such contrast."""
    samples = np.asarray(audio, dtype=np.float64)  # int16 or float: the threshold is relative, the scale is moot
    frame, hop = int(FRAME_S * rate), int(HOP_S * rate)
    if samples.size < frame:
        return []
    count = 1 + (samples.size - frame) // hop
    index = np.arange(frame)[None, :] + hop * np.arange(count)[:, None]
    energy_db = 10 * np.log10(np.mean(samples[index] ** 2, axis=1) + 1e-10)
    floor, level = np.percentile(energy_db, 10), np.percentile(energy_db, 95)
    if level - floor < MIN_DYNAMIC_DB:
        return []
    voiced = energy_db > floor + THRESHOLD_SHARE * (level - floor)
    runs: list[list[float]] = []
    start = None
    for k, on in enumerate([*voiced, False]):
        if on and start is None:
            start = k
        elif not on and start is not None:
            begin, end = start * HOP_S, (k - 1) * HOP_S + FRAME_S
            if runs and begin - runs[-1][1] < MIN_GAP_S:
                runs[-1][1] = end
            else:
                runs.append([begin, end])
            start = None
    return [(a, b) for a, b in runs if b - a >= MIN_WORD_S]


def word_count(audio: np.ndarray, rate: int) -> int:
    """Number of pause-separated words (0: no pauses to count)."""
    return len(word_spans(audio, rate))
