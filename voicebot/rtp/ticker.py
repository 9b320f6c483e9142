"""One process-wide 20 ms media clock driving every RTP stream.

Ticks follow an absolute schedule (start + n * period via loop.call_at), so lateness of one tick
never shifts later ones. A tick that is late fires as soon as possible; if the loop stalled for
more than `max_catch_up` periods the schedule jumps forward instead of bursting.

`log_media_stats` logs the ticker's figures for each period with calls ("media ticker", every 60 s by default),
so operators see late ticks (each delays that tick's packet on every call) in the server's own log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

log = logging.getLogger(__name__)

TickCallback = Callable[[int], None]
PERIOD = 0.020
LATE_THRESHOLD = 0.005
STATS_LOG_PERIOD_S = 60.0
STALL_GRACE_S = 0.3  # one loop pause this long (a GC, a slow log line) is not overload by itself
LATE_WARNING_RATIO = 0.01  # the media goal: < 1 % late packets


class MediaTicker:
    """Calls every registered callback once per period with the tick index.

    Stats: `ticks` fired, `late_ticks` fired more than `late_threshold` after their slot,
    `skipped_ticks` dropped after a stall, `max_lateness` in seconds."""

    def __init__(self, period: float = PERIOD, late_threshold: float = LATE_THRESHOLD, max_catch_up: int = 10,
                 stall_grace: float = STALL_GRACE_S) -> None:
        self.period = period
        self.late_threshold = late_threshold
        self.max_catch_up = max_catch_up
        self.stall_grace = stall_grace
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
        self.recent_lateness = 0.0  # moving average over ~10 ticks, seconds
        self.errors = 0
        self.busy_total = 0.0  # seconds spent inside callbacks
        self.max_busy = 0.0
        self._generation = 0  # bumped on every halt, so a tick in flight knows it was superseded
        self._window = [0, 0, 0, 0.0, 0.0, 0.0]  # since take_window(): ticks, late, skipped, busy, max late, max busy

    @property
    def running(self) -> bool:
        return self._handle is not None

    def __len__(self) -> int:
        return len(self._callbacks)

    def lag(self) -> float:
        """How far behind the media clock is now (seconds): the recent tick lateness (a moving average, so it
        says the loop is behind for a while), or how late the next tick already is beyond `stall_grace` when the
        loop is stalled right now; 0 while idle. Call setup is refused above a bound (admission): a single pause
        shorter than the grace (a garbage collection) must not turn callers away."""
        if self._handle is None:
            return 0.0
        overdue = time.monotonic() - (self._start + (self._index + 1) * self.period)
        return max(0.0, overdue - self.stall_grace, self.recent_lateness)

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
        self.recent_lateness = 0.0
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
        window = self._window
        window[0] += 1
        if lateness > self.late_threshold:
            self.late_ticks += 1
            window[1] += 1
        if lateness > self.max_lateness:
            self.max_lateness = lateness
        self.recent_lateness += 0.1 * (lateness - self.recent_lateness)
        if lateness > window[4]:
            window[4] = lateness
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
        window[3] += busy
        if busy > window[5]:
            window[5] = busy
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
            window[2] += behind
            window[4] = max(window[4], overdue)
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

    def take_window(self) -> dict[str, Any]:
        """Stats since the previous take_window() (independent of stats()/reset_stats()), then start a new window."""
        ticks, late, skipped, busy, max_late, max_busy = self._window
        self._window = [0, 0, 0, 0.0, 0.0, 0.0]
        return {
            "ticks": ticks,
            "late_ticks": late,
            "skipped_ticks": skipped,
            "late_pct": round(100.0 * (late + skipped) / (ticks + skipped), 3) if ticks else 0.0,
            "max_lateness_ms": round(max_late * 1000.0, 2),
            "mean_busy_ms": round(1000.0 * busy / ticks, 3) if ticks else 0.0,
            "max_busy_ms": round(max_busy * 1000.0, 2),
            "streams": len(self._callbacks),
        }

    def reset_stats(self) -> None:
        self.ticks = self.late_ticks = self.skipped_ticks = self.errors = 0
        self.max_lateness = self.busy_total = self.max_busy = 0.0


async def log_media_stats(ticker: MediaTicker, period_s: float = STATS_LOG_PERIOD_S) -> None:
    """Forever: every `period_s`, log the window's ticker stats if the ticker ran (there were calls) in it.

    A window with `LATE_WARNING_RATIO` or more late ticks is logged as a warning."""
    if period_s <= 0:
        raise ValueError(f"period_s must be positive, got {period_s}")
    ticker.take_window()
    while True:
        await asyncio.sleep(period_s)
        window = ticker.take_window()
        if not window["ticks"]:
            continue
        level = logging.WARNING if window["late_pct"] >= 100.0 * LATE_WARNING_RATIO else logging.INFO
        log.log(level, "media ticker", extra={"fields": {"period_s": period_s, **window}})


_ticker: MediaTicker | None = None


def get_ticker() -> MediaTicker:
    """The process-wide ticker."""
    global _ticker
    if _ticker is None:
        _ticker = MediaTicker()
    return _ticker
