"""Aggregated logging for events a hostile peer can trigger at will (parse errors, refused sources).

Pure logic: the clock is passed in. The first event of a kind is logged at once; later ones within ``every_s``
are only counted, and the next line logged reports how many were suppressed, so a flood writes a few lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_LOGGED_CHARS = 160


def clip(text: str, limit: int = MAX_LOGGED_CHARS) -> str:
    """``text`` cut to ``limit`` characters (attacker-controlled content is never logged in full)."""
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} chars)"


@dataclass
class LogThrottle:
    """``admit(kind, now)`` -> None (just count it) or the number of events suppressed since the last line."""

    every_s: float = 5.0
    _last: dict[str, float] = field(default_factory=dict)
    _suppressed: dict[str, int] = field(default_factory=dict)

    def admit(self, kind: str, now: float) -> int | None:
        last = self._last.get(kind)
        if last is not None and now - last < self.every_s:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._suppressed.pop(kind, 0)
