"""Session timers (RFC 4028) for the calls we answer and the legs we place: negotiation, refresh and expiry.

A call whose peer vanished without a BYE would hold its media port and agent forever; with a session timer
one side (the *refresher*) re-sends an UPDATE or re-INVITE every half interval, and the other ends the call
with BYE when no refresh came in time. :func:`negotiate` is pure (an INVITE's headers → 422 or the agreed
interval and refresher); :func:`offer_headers` / :func:`from_answer` are the same for an INVITE we send (§7);
:class:`SessionRefresh` runs the clock of one call through two callbacks. A :class:`SessionTimer`'s refresher is
named by the call's roles in its initial INVITE (an outbound leg is the "uac"); a refresh request the peer sends
names it by that request's roles (§9), which :func:`as_peer_request` turns round.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable, Literal

from .headers import Headers

log = logging.getLogger("voicebot.sip.session_timer")

Refresher = Literal["uac", "uas"]
RFC_MIN_SE = 90  # RFC 4028 §4: the smallest Min-SE a deployment should use; tests may go lower


@dataclass(frozen=True)
class SessionTimerPolicy:
    """Ours: ``expires_s`` the interval we grant at most (and ask for when the peer asks none), ``min_se_s``
    the smallest we accept (smaller → 422)."""

    enabled: bool = True
    expires_s: int = 1800
    min_se_s: int = RFC_MIN_SE


@dataclass(frozen=True)
class TooSmall:
    """The request's Session-Expires is below our Min-SE: answer 422 with ``Min-SE: min_se``."""

    min_se: int


@dataclass(frozen=True)
class SessionTimer:
    """What was agreed: the session ``interval`` in seconds, which side refreshes, whether the peer knows
    the extension (then our 2xx carries ``Require: timer``)."""

    interval: int
    refresher: Refresher
    peer_supports: bool

    def response_headers(self) -> list[tuple[str, str]]:
        headers = [("Session-Expires", f"{self.interval};refresher={self.refresher}")]
        if self.peer_supports:
            headers.append(("Require", "timer"))
        return headers

    def request_headers(self, min_se: int) -> list[tuple[str, str]]:
        """Headers of a refresh we send as the refresher. Its refresher is named by the refresh's own roles
        (§7.4, §9): we send it, so ``uac`` — whichever side we were in the initial INVITE. (Naming our initial
        role instead told a caller we answered, ``refresher=uas``, to take the refreshing over.)"""
        return [("Session-Expires", f"{self.interval};refresher=uac"), ("Min-SE", str(min_se)),
                ("Supported", "timer")]

    @property
    def expiry_s(self) -> float:
        """How long the refreshee waits for a refresh before ending the call (RFC 4028 §10)."""
        return self.interval - min(32.0, self.interval / 3)


def _delta(value: str | None) -> tuple[int | None, dict[str, str]]:
    """``4000;refresher=uac`` → (4000, {"refresher": "uac"}); (None, {}) when absent or not a number."""
    if value is None:
        return None, {}
    head, *params = (part.strip() for part in value.split(";"))
    options = {}
    for param in params:
        key, _, val = param.partition("=")
        options[key.strip().lower()] = val.strip().lower()
    return (int(head) if head.isdigit() and len(head) <= 9 else None), options


def _supports_timer(headers: Headers) -> bool:
    return any(v.strip().lower() == "timer" for name in ("Supported", "Require") for v in headers.values(name))


def negotiate(headers: Headers, policy: SessionTimerPolicy) -> SessionTimer | TooSmall | None:
    """The session timer for an INVITE (or a refresh) with ``headers`` received as UAS (RFC 4028 §9):
    None when timers are off, :class:`TooSmall` for a 422, else the interval and refresher to answer with."""
    if not policy.enabled:
        return None
    asked, params = _delta(headers.get("Session-Expires"))
    peer_min, _ = _delta(headers.get("Min-SE"))
    floor = max(policy.min_se_s, peer_min or 0)
    supports = _supports_timer(headers)
    if asked is not None and asked < policy.min_se_s and supports:
        return TooSmall(policy.min_se_s)  # a caller without the extension is not refused: its interval is raised
        # to our Min-SE below (RFC 4028 errata 1687: a 422 to it would only fail the call)
    interval = max(min(asked if asked is not None else policy.expires_s, policy.expires_s), floor)
    refresher: Refresher
    if not supports:
        refresher = "uas"  # a peer without the extension cannot refresh (§9)
    elif params.get("refresher") in ("uac", "uas"):
        refresher = params["refresher"]  # type: ignore[assignment]
    else:
        refresher = "uac"  # the caller's side refreshes; we watch and end a dead call
    return SessionTimer(interval, refresher, supports)


def from_response(headers: Headers, current: SessionTimer, local: Refresher = "uac") -> SessionTimer:
    """The timer after the peer answered our refresh: its Session-Expires, if any, is the new interval. The 2xx
    names the refresher by the refresh's roles (we were its UAC); ``local``, our role in the initial INVITE,
    turns that back into the initial INVITE's roles, which :class:`SessionTimer` keeps."""
    interval, params = _delta(headers.get("Session-Expires"))
    if interval is None:
        return current
    peer: Refresher = "uas" if local == "uac" else "uac"
    named = params.get("refresher")
    refresher = current.refresher if named not in ("uac", "uas") else (local if named == "uac" else peer)
    return SessionTimer(interval, refresher, current.peer_supports)


def offer_headers(policy: SessionTimerPolicy, min_se: int | None = None) -> list[tuple[str, str]]:
    """What an INVITE we send asks for (§7.1): our interval, our Min-SE (or a 422's), the extension supported;
    the refresher is left to the answerer."""
    if not policy.enabled:
        return []
    floor = max(policy.min_se_s, min_se or 0)
    return [("Session-Expires", str(max(policy.expires_s, floor))), ("Min-SE", str(floor)), ("Supported", "timer")]


def from_answer(headers: Headers, policy: SessionTimerPolicy, min_se: int | None = None) -> SessionTimer | None:
    """The timer of an outbound leg from its 2xx (§7.2): the answerer's interval and refresher; a 2xx without
    Session-Expires (the answerer knows no timers) leaves the refreshing to us with the interval we asked."""
    if not policy.enabled:
        return None
    interval, params = _delta(headers.get("Session-Expires"))
    if interval is None:
        return SessionTimer(max(policy.expires_s, policy.min_se_s, min_se or 0), "uac", False)
    refresher: Refresher = "uas" if params.get("refresher") == "uas" else "uac"
    return SessionTimer(interval, refresher, True)


def as_peer_request(timer: SessionTimer) -> SessionTimer:
    """A refresh request the peer of an outbound leg sent names the refresher by that request's roles (the peer
    is its UAC): the same timer with the refresher named by the initial INVITE's roles."""
    return SessionTimer(timer.interval, "uas" if timer.refresher == "uac" else "uac", timer.peer_supports)


class SessionRefresh:
    """The clock of one call; ``local`` is our role in its initial INVITE ("uas" for a call we answered, "uac"
    for a leg we placed). As refresher it calls ``refresh`` every half interval (``refresh`` returns the timer
    the peer agreed, or None when the dialog is gone: 408/481); as refreshee it calls ``expire`` when no
    refresh came within :attr:`SessionTimer.expiry_s`."""

    def __init__(self, timer: SessionTimer, refresh: Callable[[SessionTimer], Awaitable[SessionTimer | None]],
                 expire: Callable[[str], Awaitable[None]], local: Refresher = "uas") -> None:
        self.timer = timer
        self.local = local
        self.refreshes_sent = 0
        self.refreshes_received = 0
        self._refresh = refresh
        self._expire = expire
        self._reset = asyncio.Event()

    def refreshed(self, timer: SessionTimer) -> None:
        """The peer refreshed the session (re-INVITE or UPDATE answered 2xx): restart the clock with ``timer``."""
        self.timer = timer
        self.refreshes_received += 1
        self._reset.set()

    async def _reset_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._reset.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        self._reset.clear()
        return True

    async def run(self) -> None:
        """Until the call ends (the task is cancelled) or the session expires."""
        while True:
            timer = self.timer
            if timer.refresher == self.local:
                if await self._reset_within(timer.interval / 2):
                    continue  # the peer re-INVITEd meanwhile: that refreshed the session too
                agreed = await self._refresh(timer)
                if agreed is None:
                    await self._expire("session refresh failed")
                    return
                self.refreshes_sent += 1
                self.timer = agreed
            elif not await self._reset_within(timer.expiry_s):
                await self._expire("session timer expired")
                return
