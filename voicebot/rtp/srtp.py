"""SRTP/SRTCP protect and unprotect for one stream (RFC 3711) through libsrtp (``pylibsrtp``), keyed by SDES.

One :class:`SrtpContext` holds two libsrtp sessions: outbound with our master key, inbound with the peer's (any
SSRC). A packet that fails authentication or the replay check raises :class:`SrtpDropped` with its kind; the
stream counts it and drops it. Process-wide totals for /metrics live in :data:`SRTP_TOTALS`.
"""

from __future__ import annotations

from typing import Protocol

import pylibsrtp

__all__ = ["SRTP_TOTALS", "SdesKeys", "SrtpContext", "SrtpDropped", "SrtpTotals", "SUITE_PROFILES"]

SUITE_PROFILES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}
DROP_KINDS = ("auth", "replay", "error")


class SdesKeys(Protocol):
    """What an SDES negotiation agreed (voicebot.sip.sdp.SrtpKeys): suite, our key, the peer's key, window."""

    @property
    def suite(self) -> str: ...
    @property
    def local_key(self) -> bytes: ...
    @property
    def remote_key(self) -> bytes: ...
    @property
    def window_size(self) -> int | None: ...


class SrtpDropped(Exception):
    """An inbound SRTP/SRTCP packet was refused: ``kind`` is auth, replay or error."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"SRTP {kind}: {detail}")
        self.kind = kind


def _kind(error: Exception) -> str:
    text = str(error)
    if text.startswith("authentication failure"):
        return "auth"
    if text.startswith("replay check failed"):
        return "replay"
    return "error"


class SrtpTotals:
    """Counts over every stream of the process: packets protected/unprotected, drops by kind, keyings. Plain
    integers (no lock: streams and /metrics run on the one event loop thread; a stray thread can only blur a count).
    """

    __slots__ = ("sessions", "protected", "unprotected", "dropped_auth", "dropped_replay", "dropped_error")

    def __init__(self) -> None:
        self.sessions = self.protected = self.unprotected = 0
        self.dropped_auth = self.dropped_replay = self.dropped_error = 0

    def dropped(self, kind: str) -> None:
        setattr(self, f"dropped_{kind}", getattr(self, f"dropped_{kind}") + 1)

    @property
    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def prometheus(self) -> str:
        counts = self.counts
        lines = ["# HELP voicebot_srtp_sessions_total SRTP keyings installed on RTP streams (calls and rekeys)",
                 "# TYPE voicebot_srtp_sessions_total counter",
                 f"voicebot_srtp_sessions_total {counts['sessions']}",
                 "# HELP voicebot_srtp_packets_total SRTP/SRTCP packets by result",
                 "# TYPE voicebot_srtp_packets_total counter"]
        for result in ("protected", "unprotected", *(f"dropped_{kind}" for kind in DROP_KINDS)):
            lines.append(f'voicebot_srtp_packets_total{{result="{result}"}} {counts[result]}')
        return "\n".join(lines) + "\n"


SRTP_TOTALS = SrtpTotals()


def _policy(suite: str, key: bytes, ssrc_type: int, window_size: int | None) -> pylibsrtp.Policy:
    profile = SUITE_PROFILES.get(suite)
    if profile is None:
        raise ValueError(f"crypto-suite {suite!r} is not supported; use one of {', '.join(SUITE_PROFILES)}")
    policy = pylibsrtp.Policy(key=key, ssrc_type=ssrc_type, srtp_profile=profile)
    if window_size is not None:
        policy.window_size = window_size
    return policy


class SrtpContext:
    """SRTP for one RTP stream: ``protect``/``protect_rtcp`` outbound, ``unprotect``/``unprotect_rtcp`` inbound."""

    __slots__ = ("suite", "_tx", "_rx", "_totals")

    def __init__(self, suite: str, local_key: bytes, remote_key: bytes, window_size: int | None = None,
                 totals: SrtpTotals = SRTP_TOTALS) -> None:
        self.suite = suite
        self._tx = pylibsrtp.Session(_policy(suite, local_key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND, None))
        self._rx = pylibsrtp.Session(_policy(suite, remote_key, pylibsrtp.Policy.SSRC_ANY_INBOUND, window_size))
        self._totals = totals
        totals.sessions += 1

    @classmethod
    def from_keys(cls, keys: SdesKeys) -> SrtpContext:
        return cls(keys.suite, keys.local_key, keys.remote_key, keys.window_size)

    def __repr__(self) -> str:  # never the keys
        return f"SrtpContext({self.suite})"

    def protect(self, packet: bytes) -> bytes:
        self._totals.protected += 1
        return self._tx.protect(packet)

    def protect_rtcp(self, packet: bytes) -> bytes:
        return self._tx.protect_rtcp(packet)

    def unprotect(self, packet: bytes, count_drop: bool = True) -> bytes:
        """The plain RTP packet; raises SrtpDropped (counted unless ``count_drop`` is False, for a first try of
        several keys) when it fails authentication or replay."""
        try:
            plain = self._rx.unprotect(packet)
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            kind = _kind(exc)
            if count_drop:
                self._totals.dropped(kind)
            raise SrtpDropped(kind, str(exc)) from None
        self._totals.unprotected += 1
        return plain

    def unprotect_rtcp(self, packet: bytes, count_drop: bool = True) -> bytes:
        """The plain RTCP packet; raises SrtpDropped like ``unprotect``."""
        try:
            return self._rx.unprotect_rtcp(packet)
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            kind = _kind(exc)
            if count_drop:
                self._totals.dropped(kind)
            raise SrtpDropped(kind, str(exc)) from None
