"""Admission of new calls by load: refuse setups (503 + Retry-After) before they starve calls in progress.

Pure logic. Two signals: call setups still pending (INVITEs received and not yet answered or ended) and the lag of
the media clock (voicebot.rtp.ticker.MediaTicker.lag: the event loop is too busy to send every call's packets on
time).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SetupAdmission:
    max_pending_setups: int = 100
    max_media_lag_s: float = 0.060
    retry_after_s: int = 2

    def __post_init__(self) -> None:
        if self.max_pending_setups < 1 or self.max_media_lag_s <= 0 or self.retry_after_s < 1:
            raise ValueError("admission needs max_pending_setups >= 1, max_media_lag_s > 0, retry_after_s >= 1")

    def refusal(self, pending_setups: int, media_lag_s: float) -> str | None:
        """Why a new call setup must wait (the 503 reason), or None to admit it."""
        if pending_setups >= self.max_pending_setups:
            return f"overloaded: {pending_setups} call setups pending"
        if media_lag_s > self.max_media_lag_s:
            return f"overloaded: media clock {media_lag_s * 1000:.0f} ms late"
        return None
