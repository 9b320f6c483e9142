"""Per-source admission control for out-of-dialog SIP requests: token buckets and temporary bans (pure logic)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

SCANNER_USER_AGENTS = ("friendly-scanner", "sipvicious", "sipcli", "sip-scan", "sundayddr", "iwar", "sipsak")


@dataclass
class _Bucket:
    tokens: float
    updated: float
    strikes: float = 0.0  # refusals, decaying with time constant strike_window_s
    struck: float = 0.0  # when strikes was last updated


@dataclass
class SourceLimiter:
    """``admit(source, now)`` is False when a source exceeds ``rate``/s (burst ``burst``) or is banned.

    A source that keeps exceeding is banned for ``ban_s`` seconds: refusals count as strikes that decay with
    time constant ``strike_window_s`` (admitted requests in between do not wipe them), and ``ban_after`` strikes
    ban. A sustained flood is banned once it is refused more than ban_after / strike_window_s times a second
    (defaults: 10/s, i.e. 1.5x the default rate of 20/s). A User-Agent naming a known SIP scanner bans at once.
    ``on_ban(source, reason)`` is told of each ban.
    """

    rate: float = 20.0
    burst: float = 40.0
    ban_after: int = 100
    ban_s: float = 60.0
    strike_window_s: float = 10.0
    max_sources: int = 100_000
    on_ban: Callable[[str, str], None] | None = None
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _banned: dict[str, float] = field(default_factory=dict)
    refused: int = 0

    def banned(self, source: str, now: float) -> bool:
        until = self._banned.get(source)
        if until is None:
            return False
        if now >= until:
            del self._banned[source]
            return False
        return True

    def ban(self, source: str, now: float, reason: str = "flood") -> None:
        self._banned[source] = now + self.ban_s
        if self.on_ban is not None:
            self.on_ban(source, reason)

    def admit(self, source: str, now: float, user_agent: str | None = None) -> bool:
        if self.banned(source, now):
            self.refused += 1
            return False
        if user_agent and any(s in user_agent.lower() for s in SCANNER_USER_AGENTS):
            self.ban(source, now, "scanner user agent")
            self.refused += 1
            return False
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= self.max_sources:
                self._evict(now)
            bucket = self._buckets[source] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        bucket.strikes = bucket.strikes * math.exp(-(now - bucket.struck) / self.strike_window_s) + 1.0
        bucket.struck = now
        self.refused += 1
        if bucket.strikes >= self.ban_after:
            bucket.strikes = 0.0
            self.ban(source, now)
        return False

    def _evict(self, now: float) -> None:
        """Forget sources whose buckets are full again (idle long enough)."""
        idle = [s for s, b in self._buckets.items() if b.tokens + (now - b.updated) * self.rate >= self.burst]
        for source in idle or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[source]
