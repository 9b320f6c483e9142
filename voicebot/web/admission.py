"""Admission of anonymous browser calls (POST /webrtc/offer): caps and a rate limit per source (pure logic).

The "call us" page is public, so each offer is checked before any WebRTC work is done:

    admission = BrowserAdmission(BrowserLimits(per_source=3), other_calls=lambda: ua.active_calls)
    verdict = admission.admit("203.0.113.9", now)        # Admitted() or Refused(status, reason, retry_after_s)
    ...                                                   # once the call has ended:
    admission.release("203.0.113.9")

Browser calls share ``limits.max_calls`` with SIP calls (``other_calls`` counts the SIP side, and the SIP user
agent counts :attr:`BrowserAdmission.active` in turn).
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Admitted", "BrowserAdmission", "BrowserLimits", "Refused", "source_key"]

MAX_TRACKED_SOURCES = 100_000  # bounds memory under offers from many addresses


def source_key(address: str) -> str:
    """What limits are counted per: the IPv4 address, or the /64 of an IPv6 address (one host owns a /64)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass(frozen=True)
class BrowserLimits:
    """How many browser calls are taken: in total (shared with SIP), per source address, and how fast."""

    max_calls: int = 500
    per_source: int = 3
    offers_per_source_per_min: int = 12
    connect_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_calls < 1 or self.per_source < 1 or self.offers_per_source_per_min < 1:
            raise ValueError(f"browser call limits must be at least 1, got {self}")
        if self.connect_timeout_s <= 0:
            raise ValueError(f"connect_timeout_s must be positive, got {self.connect_timeout_s}")


@dataclass(frozen=True)
class Admitted:
    pass


@dataclass(frozen=True)
class Refused:
    status: int  # 429 (this source) or 503 (the server is full)
    reason: str
    retry_after_s: int


class BrowserAdmission:
    """Counts browser calls in progress per source and the offers each source made in the last minute."""

    WINDOW_S = 60.0

    def __init__(self, limits: BrowserLimits, other_calls: Callable[[], int] = lambda: 0) -> None:
        self.limits = limits
        self.other_calls = other_calls
        self._active: dict[str, int] = {}
        self._offers: dict[str, deque[float]] = {}

    @property
    def active(self) -> int:
        """Browser calls admitted and not yet released."""
        return sum(self._active.values())

    def admit(self, source: str, now: float) -> Admitted | Refused:
        """Take one call from ``source`` or say why not; every attempt counts towards the rate limit."""
        source = source_key(source)
        offers = self._offers.setdefault(source, deque())
        while offers and offers[0] <= now - self.WINDOW_S:
            offers.popleft()
        if len(offers) >= self.limits.offers_per_source_per_min:
            wait = int(offers[0] + self.WINDOW_S - now) + 1
            return Refused(429, f"too many call attempts from your address (at most "
                                f"{self.limits.offers_per_source_per_min} a minute); try again in {wait} s", wait)
        offers.append(now)
        if len(self._offers) > MAX_TRACKED_SOURCES:
            self._offers.pop(next(iter(self._offers)))
        if self._active.get(source, 0) >= self.limits.per_source:
            return Refused(429, f"too many calls in progress from your address (at most {self.limits.per_source})",
                           int(self.limits.connect_timeout_s) + 1)
        if self.active + self.other_calls() >= self.limits.max_calls:
            return Refused(503, "all lines are busy; please try again shortly", 5)
        self._active[source] = self._active.get(source, 0) + 1
        return Admitted()

    def release(self, source: str) -> None:
        """The call admitted for ``source`` has ended."""
        source = source_key(source)
        left = self._active.get(source, 0) - 1
        if left > 0:
            self._active[source] = left
        else:
            self._active.pop(source, None)
