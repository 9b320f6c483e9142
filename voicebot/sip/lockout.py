"""Lockout after repeated failed digest logins (password guessing), per source address and per user.

Pure logic: the clock is passed in. Failures are counted in a sliding window; reaching the threshold bans the
source (all its users) or the user (from every source) for ``ban_s``, doubled for each further ban of the same
key (back-off) up to ``max_ban_s``. A banned key is refused without its password being checked.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Ban:
    """A ban that has just started: ``scope`` is "source" or "user", ``key`` the address or user name."""

    scope: str
    key: str
    until: float
    failures: int


@dataclass
class AuthLockout:
    failures_per_source: int = 10
    failures_per_user: int = 30
    window_s: float = 300.0
    ban_s: float = 900.0
    max_ban_s: float = 86_400.0
    max_keys: int = 100_000
    _failures: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _banned: dict[tuple[str, str], float] = field(default_factory=dict)
    _offences: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.failures_per_source < 1 or self.failures_per_user < 1:
            raise ValueError("lockout thresholds must be at least 1 failure")
        if self.window_s <= 0 or self.ban_s <= 0 or self.max_ban_s < self.ban_s:
            raise ValueError("lockout needs window_s > 0 and 0 < ban_s <= max_ban_s")

    def locked(self, source: str, user: str | None, now: float) -> Ban | None:
        """The ban in force on ``source`` or ``user``, if any."""
        for key in (("source", source), ("user", user or "")):
            until = self._banned.get(key)
            if until is not None and now < until:
                return Ban(key[0], key[1], until, 0)
            if until is not None:
                del self._banned[key]
        return None

    def failed(self, source: str, user: str | None, now: float) -> list[Ban]:
        """Count one failed login of ``user`` (None: unknown user, counted for the source only) from
        ``source``; the bans this starts."""
        bans = []
        keys = [(("source", source), self.failures_per_source)]
        if user:
            keys.append((("user", user), self.failures_per_user))
        for key, threshold in keys:
            times = self._failures.get(key)
            if times is None:
                if len(self._failures) >= self.max_keys:
                    self._forget_idle(now)
                times = self._failures[key] = deque()
            times.append(now)
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if len(times) >= threshold:
                offences = self._offences.get(key, 0)
                self._offences[key] = offences + 1
                until = now + min(self.max_ban_s, self.ban_s * 2 ** offences)
                self._banned[key] = until
                bans.append(Ban(key[0], key[1], until, len(times)))
                del self._failures[key]
        return bans

    def _forget_idle(self, now: float) -> None:
        """Drop failure counts whose window has passed (if none has, the older half) and expired bans."""
        idle = [k for k, times in self._failures.items() if not times or times[-1] <= now - self.window_s]
        for key in idle or list(self._failures)[: len(self._failures) // 2]:
            del self._failures[key]
        for key in [k for k, until in self._banned.items() if until <= now]:
            del self._banned[key]
            if len(self._offences) >= self.max_keys:
                self._offences.pop(key, None)
