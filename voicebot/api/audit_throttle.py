"""Throttle for anonymous audit lines: a few per source per window, the rest counted into one summary line.

Without it every anonymous request with a bad or missing token wrote an audit line (3,000 lines in 2 s); the
hash-chained audit file is for evidence, not for a flood. Pure logic: the caller writes the lines.

    throttle = AuditThrottle(per_key=5, total=100, window_s=60)
    if throttle.allow("203.0.113.9", now): audit("auth_failed", ...)        # else counted
    for source, count in throttle.drain(now): audit("auth_failed_suppressed", source=source, count=count)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AuditThrottle"]


@dataclass
class _Window:
    start: float
    written: int = 0
    suppressed: int = 0


class AuditThrottle:
    """At most ``per_key`` lines per key and ``total`` lines overall per ``window_s``; the rest are counted."""

    def __init__(self, per_key: int = 5, total: int = 100, window_s: float = 60.0, max_keys: int = 10_000) -> None:
        if per_key < 1 or total < 1 or window_s <= 0 or max_keys < 1:
            raise ValueError("audit throttle limits must be positive")
        self.per_key, self.total, self.window_s, self.max_keys = per_key, total, window_s, max_keys
        self._windows: dict[str, _Window] = {}
        self._overall = _Window(start=float("-inf"))
        self._pending: dict[str, int] = {}  # key -> lines suppressed in windows already closed

    def _close(self, key: str, window: _Window) -> None:
        if window.suppressed:
            self._pending[key] = self._pending.get(key, 0) + window.suppressed

    def allow(self, key: str, now: float) -> bool:
        """Whether to write this line; if not, it is counted for the key's summary."""
        window = self._windows.get(key)
        if window is None or now - window.start >= self.window_s:
            if window is not None:
                self._close(key, self._windows.pop(key))
            elif len(self._windows) >= self.max_keys:
                oldest = next(iter(self._windows))
                self._close(oldest, self._windows.pop(oldest))
            window = self._windows[key] = _Window(start=now)
        if now - self._overall.start >= self.window_s:
            self._overall = _Window(start=now)
        if window.written < self.per_key and self._overall.written < self.total:
            window.written += 1
            self._overall.written += 1
            return True
        window.suppressed += 1
        return False

    def drain(self, now: float, force: bool = False) -> list[tuple[str, int]]:
        """(key, lines suppressed) for windows that have closed (all of them with ``force``), each reported once."""
        for key, window in list(self._windows.items()):
            if force or now - window.start >= self.window_s:
                self._close(key, self._windows.pop(key))
        summary, self._pending = list(self._pending.items()), {}
        return summary
