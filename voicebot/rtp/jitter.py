"""Fixed-depth jitter buffer with loss concealment for the recogniser. Pure logic, no I/O.

Frames go in by RTP sequence number (16-bit, wrapping) as they arrive; one frame comes out per
20 ms tick. Playout starts once `depth` frames are buffered, so reordering within that window is
absorbed. At each tick the frame with the expected sequence number is played; if it is missing
while later frames are waiting it is counted lost and concealed (the previous frame once at half
level, then silence). If the buffer runs dry the buffer rebuffers to `depth` again while emitting
concealment, without assuming loss (the sender may simply have paused). Too many frames waiting
(the sender's clock runs fast, or a burst after a stall) are trimmed back to `depth`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.int16]

MAX_DROPOUT = 3000  # RFC 3550 A.1: larger forward jumps are a sequence restart, not loss
MAX_MISORDER = 100  # RFC 3550 A.1: packets further back than this are a restart, not late


@dataclass(slots=True)
class JitterStats:
    received: int = 0
    lost: int = 0
    late: int = 0
    duplicate: int = 0
    reordered: int = 0
    concealed: int = 0
    overflow: int = 0
    resets: int = 0


class JitterBuffer:
    """Reorders frames by sequence number and conceals losses; see the module docstring."""

    def __init__(self, depth: int = 3, frame_samples: int = 160, max_depth: int | None = None) -> None:
        if depth < 1:
            raise ValueError(f"jitter buffer depth must be >= 1, got {depth}")
        self.depth = depth
        self.max_depth = max_depth if max_depth is not None else 3 * depth
        if self.max_depth < depth:
            raise ValueError(f"max_depth {self.max_depth} is below depth {depth}")
        self.frame_samples = frame_samples
        self.stats = JitterStats()
        self._silence: Frame = np.zeros(frame_samples, dtype=np.int16)
        self._silence.setflags(write=False)
        self._ssrc: int | None = None
        self._clear()

    def _clear(self) -> None:
        self._frames: dict[int, Frame] = {}
        self._next: int | None = None  # extended sequence number to play next
        self._highest: int | None = None  # highest extended sequence number received
        self._playing = False
        self._played: set[int] = set()
        self._last_frame: Frame | None = None
        self._concealed_in_row = 0
        self._restart_candidate: int | None = None

    @property
    def buffered(self) -> int:
        return len(self._frames)

    @property
    def idle(self) -> bool:
        """Nothing buffered and not playing out: pop() would only return None or a concealment frame."""
        return not self._playing and not self._frames

    def reset(self) -> None:
        """Forget everything buffered (new source, re-INVITE); counters are kept."""
        self._clear()
        self.stats.resets += 1

    def _extend(self, sequence: int) -> int:
        reference = self._next if self._next is not None else self._highest
        if reference is None:
            return sequence
        delta = ((sequence - reference + 0x8000) & 0xFFFF) - 0x8000
        return reference + delta

    def push(self, sequence: int, frame: Frame, ssrc: int) -> bool:
        """Add one received frame; return False when it is dropped (duplicate, late, stray)."""
        stats = self.stats
        stats.received += 1
        if ssrc != self._ssrc:
            if self._ssrc is not None:
                self.reset()
            self._ssrc = ssrc
        ext = self._extend(sequence)
        reference = self._next if self._next is not None else self._highest
        if reference is not None and not -MAX_MISORDER <= ext - reference <= MAX_DROPOUT:
            # RFC 3550 A.1: accept a restart only when two consecutive packets agree on it.
            if self._restart_candidate is not None and (sequence - self._restart_candidate) & 0xFFFF == 1:
                self.reset()
                self._ssrc = ssrc
                ext = sequence
            else:
                self._restart_candidate = sequence
                stats.late += 1
                return False
        self._restart_candidate = None
        if self._next is not None and ext < self._next:
            if ext in self._played:
                stats.duplicate += 1
            else:
                stats.late += 1
            return False
        if ext in self._frames:
            stats.duplicate += 1
            return False
        if self._highest is not None and ext < self._highest:
            stats.reordered += 1
        else:
            self._highest = ext
        self._frames[ext] = frame
        return True

    def pop(self) -> Frame | None:
        """Return the frame for this tick, or None before playout has started."""
        frames = self._frames
        if not self._playing:
            if len(frames) < self.depth:
                return None if self._next is None else self._conceal()
            first = min(frames)
            if self._next is not None and first > self._next:
                self.stats.lost += first - self._next
            self._next = first
            self._playing = True
        elif len(frames) > self.max_depth:
            self._trim()
        assert self._next is not None
        frame = frames.pop(self._next, None)
        if frame is None:
            if not frames:
                self._playing = False  # ran dry: rebuffer without assuming loss
                return self._conceal()
            self.stats.lost += 1
            self._next += 1
            return self._conceal()
        self._mark_played(self._next)
        self._last_frame = frame
        self._concealed_in_row = 0
        return frame

    def _mark_played(self, ext: int) -> None:
        played = self._played
        played.add(ext)
        played.discard(ext - MAX_MISORDER)
        if len(played) > 2 * MAX_MISORDER:  # stale entries left behind by jumps
            self._played = {seen for seen in played if seen > ext - MAX_MISORDER}
        self._next = ext + 1

    def _trim(self) -> None:
        assert self._next is not None
        while len(self._frames) > self.depth:
            oldest = min(self._frames)
            del self._frames[oldest]
            self.stats.overflow += 1
            self._next = oldest + 1
        self._next = min(self._frames)

    def _conceal(self) -> Frame:
        self.stats.concealed += 1
        self._concealed_in_row += 1
        if self._concealed_in_row == 1 and self._last_frame is not None:
            return self._last_frame >> 1  # repeat once at half level (-6 dB)
        return self._silence
