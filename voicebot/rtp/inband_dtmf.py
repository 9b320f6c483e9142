"""In-band DTMF: digits detected in the caller's decoded 8 kHz audio, for peers that send neither RFC 4733
telephone-events nor SIP INFO. Pure logic (numpy), no I/O.

Each 20 ms analysis window (160 samples, hop 10 ms) is measured at the eight DTMF frequencies (single-bin DFTs,
what a Goertzel filter computes, done as one matrix product per frame). A window holds a digit when, in the
spirit of ITU-T Q.24:
  * one row and one column tone are each at least ``min_level_dbm0``;
  * twist is bounded: the row tone at most ``normal_twist_db`` above the column tone, at most
    ``reverse_twist_db`` below it;
  * each is ``relative_peak_db`` above every other tone of its group (a chord or a vowel fails);
  * the two tones carry ``tone_to_total`` of the window's energy (speech and noise spread it out).
A digit is reported once it holds for ``min_hits`` consecutive windows (>= 38 ms of tone always, < 28 ms never)
and is re-armed only after ``min_misses`` windows without it (a pause; a <= 10 ms dropout does not split it).
Frequency deviation is not checked beyond what the 50 Hz bins tolerate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["InbandDtmfDetector", "InbandDtmfSettings", "ROW_HZ", "COLUMN_HZ", "KEYPAD", "dtmf_tone"]

SAMPLE_RATE = 8000
WINDOW = 160  # 20 ms: 50 Hz bins, enough to tell the rows (73..89 Hz apart) apart
HOP = 80  # 10 ms
ROW_HZ = (697.0, 770.0, 852.0, 941.0)
COLUMN_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")
DBM0_AMPLITUDE = 22_700.0  # peak of a 0 dBm0 sine in 16-bit linear PCM (G.711 full scale is +3.14 dBm0)

_FREQS = np.array(ROW_HZ + COLUMN_HZ)
_PHASE = 2.0 * np.pi * np.outer(_FREQS, np.arange(WINDOW)) / SAMPLE_RATE
_BASIS = np.vstack([np.cos(_PHASE), np.sin(_PHASE)])  # (16, WINDOW): real parts then imaginary parts


@dataclass(frozen=True, slots=True)
class InbandDtmfSettings:
    """Acceptance limits; the defaults follow Q.24's common ranges."""

    min_level_dbm0: float = -30.0
    normal_twist_db: float = 8.0  # row tone louder than the column tone
    reverse_twist_db: float = 4.0  # column tone louder than the row tone
    relative_peak_db: float = 6.0
    tone_to_total: float = 0.7
    min_hits: int = 3
    min_misses: int = 3


def _db(ratio: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(10.0 * np.log10(np.maximum(ratio, 1e-20)), dtype=np.float64)


class InbandDtmfDetector:
    """Feed decoded audio in any chunk size; ``feed`` returns the digits that started in it, each once."""

    def __init__(self, settings: InbandDtmfSettings | None = None) -> None:
        self.settings = s = settings or InbandDtmfSettings()
        self._min_power = (DBM0_AMPLITUDE * 10 ** (s.min_level_dbm0 / 20)) ** 2 / 2  # mean square of that sine
        self._pending = np.zeros(0, dtype=np.float64)
        self._current: str | None = None  # the digit reported and still sounding
        self._candidate: str | None = None
        self._hits = 0
        self._misses = 0
        self.windows = 0

    def feed(self, pcm: npt.NDArray[np.int16]) -> list[str]:
        """Digits whose tone pair became valid in this audio (in order)."""
        pending = np.concatenate((self._pending, pcm.astype(np.float64)))
        count = (len(pending) - WINDOW) // HOP + 1 if len(pending) >= WINDOW else 0
        if count <= 0:
            self._pending = pending
            return []
        frames = np.lib.stride_tricks.sliding_window_view(pending, WINDOW)[::HOP][:count]
        self._pending = pending[count * HOP:]
        self.windows += count
        return [d for d in (self._step(digit) for digit in self.classify(frames)) if d is not None]

    def classify(self, frames: npt.NDArray[np.float64]) -> list[str | None]:
        """The digit each window (a row of ``frames``, WINDOW samples) holds, or None."""
        s = self.settings
        mean_square = np.einsum("ij,ij->i", frames, frames) / WINDOW
        if not (2.0 * mean_square >= self._min_power).any():  # a bin holds at most twice the mean square
            return [None] * len(frames)  # too quiet for any tone (silence, most of a call): no DFT
        parts = frames @ _BASIS.T  # (n, 16)
        power = 2.0 * (parts[:, :8] ** 2 + parts[:, 8:] ** 2) / WINDOW ** 2  # mean square of each tone
        rows, cols = power[:, :4], power[:, 4:]
        row, col = rows.argmax(axis=1), cols.argmax(axis=1)
        index = np.arange(len(frames))
        row_power, col_power = rows[index, row], cols[index, col]
        ok = (row_power >= self._min_power) & (col_power >= self._min_power)
        twist = _db(row_power / np.maximum(col_power, 1e-20))
        ok &= (twist <= s.normal_twist_db) & (twist >= -s.reverse_twist_db)
        for group, best, best_power in ((rows, row, row_power), (cols, col, col_power)):
            others = group.copy()
            others[index, best] = 0.0
            ok &= _db(best_power / np.maximum(others.max(axis=1), 1e-20)) >= s.relative_peak_db
        ok &= row_power + col_power >= s.tone_to_total * mean_square
        return [KEYPAD[r][c] if good else None for r, c, good in zip(row.tolist(), col.tolist(), ok.tolist())]

    def _step(self, digit: str | None) -> str | None:
        """Advance the duration / pause state machine by one window."""
        s = self.settings
        if self._current is not None:
            if digit == self._current:
                self._misses = 0
                return None
            self._misses += 1
            if self._misses < s.min_misses:
                return None
            self._current = None
            self._candidate, self._hits = None, 0
        if digit is None:
            self._candidate, self._hits = None, 0
            return None
        if digit == self._candidate:
            self._hits += 1
        else:
            self._candidate, self._hits = digit, 1
        if self._hits >= s.min_hits:
            self._current, self._misses = digit, 0
            self._candidate, self._hits = None, 0
            return digit
        return None


def dtmf_tone(digit: str, duration_ms: float, *, level_dbm0: float = -10.0, twist_db: float = 0.0,
              rate: int = SAMPLE_RATE) -> npt.NDArray[np.int16]:
    """The two-tone signal of ``digit`` (each tone at ``level_dbm0``; ``twist_db`` > 0 makes the row tone louder),
    as 16-bit PCM: what a phone's keypad sends, for tests and tools."""
    for r, keys in enumerate(KEYPAD):
        if digit.upper() in keys:
            c = keys.index(digit.upper())
            break
    else:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    t = np.arange(int(rate * duration_ms / 1000)) / rate
    amplitude = DBM0_AMPLITUDE * 10 ** (level_dbm0 / 20)
    row = amplitude * 10 ** (twist_db / 40) * np.sin(2 * np.pi * ROW_HZ[r] * t)
    col = amplitude * 10 ** (-twist_db / 40) * np.sin(2 * np.pi * COLUMN_HZ[c] * t)
    return np.clip(np.round(row + col), -32768, 32767).astype(np.int16)
