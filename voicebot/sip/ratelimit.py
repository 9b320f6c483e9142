"""Per-source admission control for out-of-dialog SIP requests: token buckets and temporary bans (pure logic)."""

from __future__ import annotations

from dataclasses import dataclass, field

SCANNER_USER_AGENTS = ("friendly-scanner", "sipvicious", "sipcli", "sip-scan", "sundayddr", "iwar", "sipsak")


@dataclass
class _Bucket:
    tokens: float
    updated: float
    strikes: int = 0


@dataclass
class SourceLimiter:
    """``admit(source, now)`` is False when a source exceeds ``rate``/s (burst ``burst``) or is banned.

    A source that keeps exceeding (``ban_after`` refused requests in a row) is banned for ``ban_s`` seconds;
    so is one whose User-Agent names a known SIP scanner.
    """

    rate: float = 20.0
    burst: float = 40.0
    ban_after: int = 50
    ban_s: float = 60.0
    max_sources: int = 100_000
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

    def ban(self, source: str, now: float) -> None:
        self._banned[source] = now + self.ban_s

    def admit(self, source: str, now: float, user_agent: str | None = None) -> bool:
        if self.banned(source, now):
            self.refused += 1
            return False
        if user_agent and any(s in user_agent.lower() for s in SCANNER_USER_AGENTS):
            self.ban(source, now)
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
            bucket.strikes = 0
            return True
        bucket.strikes += 1
        self.refused += 1
        if bucket.strikes >= self.ban_after:
            self.ban(source, now)
        return False

    def _evict(self, now: float) -> None:
        """Forget sources whose buckets are full again (idle long enough)."""
        idle = [s for s, b in self._buckets.items() if b.tokens + (now - b.updated) * self.rate >= self.burst]
        for source in idle or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[source]
