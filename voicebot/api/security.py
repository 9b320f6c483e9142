"""Failed-login rate limiting per client address, and a CORS policy that only ever names listed origins."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

__all__ = ["CorsPolicy", "LoginLimiter"]


class LoginLimiter:
    """At most `max_failures` failed authentications per address within `window_s`; then refuse until they age out."""

    def __init__(self, max_failures: int = 5, window_s: float = 60.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(address, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures

    def blocked(self, address: str, now: float) -> float | None:
        """Seconds until `address` may try again, or None when it may try now."""
        failures = self._recent(address, now)
        if len(failures) < self.max_failures:
            if not failures:
                self._failures.pop(address, None)
            return None
        return max(1.0, failures[0] + self.window_s - now)

    def failed(self, address: str, now: float) -> None:
        self._recent(address, now).append(now)
        if len(self._failures) > 100_000:  # bound memory under a scan from many addresses
            self._failures.pop(next(iter(self._failures)))


class CorsPolicy:
    """Allow cross-origin requests only from exact listed origins (never '*'); empty means same-origin only."""

    def __init__(self, origins: Iterable[str] = ()) -> None:
        self.origins = frozenset(origins)
        if "*" in self.origins:
            raise ValueError("CORS origin '*' is not allowed: list the exact origins, e.g. https://desk.example.com")

    def headers(self, origin: str | None) -> dict[str, str]:
        if not origin or origin not in self.origins:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Allow-Methods": "GET, POST, PATCH, OPTIONS",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }
