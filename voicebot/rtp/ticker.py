"""One process-wide 20 ms media clock driving every RTP stream.

Ticks follow an absolute schedule (start + n * period via loop.call_at), so lateness of one tick
never shifts later ones. A tick that is late fires as soon as possible; if the loop stalled for
more than `max_catch_up` periods the schedule jumps forward instead of bursting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

log = logging.getLogger(__name__)

TickCallback = Callable[[int], None]
PERIOD = 0.020
LATE_THRESHOLD = 0.005


class MediaTicker:
    """Calls every registered callback once per period with the tick index.

    Stats: `ticks` fired, `late_ticks` fired more than `late_threshold` after their slot,
    `skipped_ticks` dropped after a stall, `max_lateness` in seconds."""

    def __init__(self, period: float = PERIOD, late_threshold: float = LATE_THRESHOLD, max_catch_up: int = 10) -> None:
        self.period = period
        self.late_threshold = late_threshold
        self.max_catch_up = max_catch_up
        self._callbacks: dict[TickCallback, None] = {}  # insertion-ordered set
        self._snapshot: tuple[TickCallback, ...] = ()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._start = 0.0
        self._index = 0
        self.ticks = 0
        self.late_ticks = 0
        self.skipped_ticks = 0
        self.max_lateness = 0.0
        self.errors = 0
        self.busy_total = 0.0  # seconds spent inside callbacks
        self.max_busy = 0.0
        self._generation = 0  # bumped on every halt, so a tick in flight knows it was superseded

    @property
    def running(self) -> bool:
        return self._handle is not None

    def __len__(self) -> int:
        return len(self._callbacks)

    def add(self, callback: TickCallback) -> None:
        """Register a callback; starts the clock on the running loop if it was idle."""
        loop = asyncio.get_running_loop()
        if self._handle is not None and self._loop is not loop:
            if self._loop is not None and self._loop.is_closed():
                self._halt()  # left over from a loop that is gone (e.g. a finished test)
                self._callbacks.clear()
            else:
                raise RuntimeError("MediaTicker is already running on another event loop")
        self._callbacks[callback] = None
        self._snapshot = tuple(self._callbacks)
        if self._handle is None:
            self._loop = loop
            self._start = loop.time()
            self._index = 0
            self._handle = loop.call_at(self._start + self.period, self._tick)

    def remove(self, callback: TickCallback) -> None:
        """Unregister a callback (no error if absent); stops the clock when none remain."""
        if self._callbacks.pop(callback, 0) is None:
            self._snapshot = tuple(self._callbacks)
        if not self._callbacks:
            self._halt()

    def _halt(self) -> None:
        self._generation += 1
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._loop = None

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        self._index += 1
        scheduled = self._start + self._index * self.period
        began = time.monotonic()  # loop.time() is cached per iteration (and ms-granular on uvloop)
        lateness = began - scheduled
        self.ticks += 1
        if lateness > self.late_threshold:
            self.late_ticks += 1
        if lateness > self.max_lateness:
            self.max_lateness = lateness
        index = self._index
        generation = self._generation
        for callback in self._snapshot:
            try:
                callback(index)
            except Exception:
                self.errors += 1
                log.exception("media tick callback %r failed; removed from the ticker", callback)
                self._callbacks.pop(callback, None)
                self._snapshot = tuple(self._callbacks)
        busy = time.monotonic() - began
        self.busy_total += busy
        if busy > self.max_busy:
            self.max_busy = busy
        if generation != self._generation:
            return  # halted (and maybe restarted) by a callback during this tick
        if not self._callbacks:
            self._halt()
            return
        overdue = began + busy - (scheduled + self.period)  # how late the next tick already is
        behind = int(overdue / self.period)
        if behind > self.max_catch_up:
            # a stall: skipped ticks count as late, the schedule resumes from now instead of bursting
            self.skipped_ticks += behind
            self.max_lateness = max(self.max_lateness, overdue)
            self._index += behind
        self._handle = loop.call_at(self._start + (self._index + 1) * self.period, self._tick)

    def stats(self) -> dict[str, float]:
        return {
            "ticks": self.ticks,
            "late_ticks": self.late_ticks,
            "late_ratio": (self.late_ticks + self.skipped_ticks) / (self.ticks + self.skipped_ticks)
            if self.ticks else 0.0,
            "max_lateness_ms": self.max_lateness * 1000.0,
            "skipped_ticks": self.skipped_ticks,
            "mean_busy_ms": 1000.0 * self.busy_total / self.ticks if self.ticks else 0.0,
            "max_busy_ms": 1000.0 * self.max_busy,
            "callbacks": len(self._callbacks),
            "errors": self.errors,
        }

    def reset_stats(self) -> None:
        self.ticks = self.late_ticks = self.skipped_ticks = self.errors = 0
        self.max_lateness = self.busy_total = self.max_busy = 0.0


_ticker: MediaTicker | None = None


def get_ticker() -> MediaTicker:
    """The process-wide ticker."""
    global _ticker
    if _ticker is None:
        _ticker = MediaTicker()
    return _ticker
