"""Estimated wait time: a range from position, staffed agents and handle-time averages, Erlang-A style.

With `n` agents serving, average handle time `aht` (service rate mu = 1/aht each) and abandonment rate theta
(1 / mean patience), a caller with k-1 people ahead waits for k departures "from ahead of them": while j are
ahead, the next departure comes at rate n*mu + j*theta (an agent frees up, or someone ahead gives up). So

    E[W] = sum_{j=0}^{k-1} 1 / (n*mu + j*theta),      Var[W] = sum_{j=0}^{k-1} 1 / (n*mu + j*theta)^2

and the announced range is E[W] -/+ one standard deviation. `estimate` returns None when there is no data
(no handle-time samples, or nobody staffed): say so instead of inventing a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Ewt", "announce", "estimate", "position_phrase", "spoken_range"]


@dataclass(frozen=True)
class Ewt:
    low_s: float
    high_s: float

    @property
    def mid_s(self) -> float:
        return (self.low_s + self.high_s) / 2


def estimate(
    position: int,
    staffed: int,
    available: int,
    aht_s: float | None,
    handled: int,
    patience_rate: float | None = None,
    *,
    min_samples: int = 3,
) -> Ewt | None:
    """The wait range in seconds for the caller at `position` (1-based), or None without data."""
    if position < 1:
        raise ValueError(f"position must be 1 or more, got {position}")
    if available >= position:
        return Ewt(0.0, 0.0)
    if staffed <= 0 or aht_s is None or aht_s <= 0 or handled < min_samples:
        return None
    ahead_of_free = position - available  # departures still needed once the free agents are taken
    service_rate = staffed / aht_s
    theta = patience_rate or 0.0
    mean = variance = 0.0
    for ahead in range(ahead_of_free):
        rate = service_rate + ahead * theta
        mean += 1.0 / rate
        variance += 1.0 / (rate * rate)
    spread = math.sqrt(variance)
    return Ewt(max(0.0, mean - spread), mean + spread)


def _minutes_range(ewt: Ewt) -> tuple[int, int]:
    low = max(1, math.floor(ewt.low_s / 60))
    high = max(low + 1, math.ceil(ewt.high_s / 60))
    if high > 10:  # coarser steps for long waits: "about 10 to 15 minutes"
        low, high = 5 * max(1, low // 5), 5 * math.ceil(high / 5)
    return low, high


def spoken_range(ewt: Ewt | None) -> tuple[float, float] | None:
    """The range `announce` says, in seconds ('about 3 to 5 minutes' -> (180, 300); 'less than a minute' ->
    (0, 60)): what the caller was told, for the call record. None when no estimate was given."""
    if ewt is None:
        return None
    if ewt.high_s < 60:
        return 0.0, 60.0
    low, high = _minutes_range(ewt)
    return low * 60.0, high * 60.0


def announce(ewt: Ewt | None, lang: str = "en-US", position: int | None = None) -> str:
    """The wait as a rounded range to speak: 'about 3 to 5 minutes' / '大约3到5分钟'.

    With `position`, a whole sentence: 'You are number 2 in the queue. The wait is about 3 to 5 minutes.'
    """
    chinese = lang.lower().startswith("zh")
    if position is not None:
        wait = announce(ewt, lang)
        if chinese:
            return position_phrase(position, lang) + ("暂时无法估计等待时间。" if ewt is None else f"预计等待{wait}。")
        if ewt is None:
            return f"{position_phrase(position, lang)} We cannot estimate the wait right now."
        return f"{position_phrase(position, lang)} The wait is {wait}."
    if ewt is None:
        return "暂时无法估计等待时间" if chinese else "we cannot estimate the wait right now"
    if ewt.high_s < 60:
        return "不到一分钟" if chinese else "less than a minute"
    low, high = _minutes_range(ewt)
    return f"大约{low}到{high}分钟" if chinese else f"about {low} to {high} minutes"


def position_phrase(position: int, lang: str = "en-US") -> str:
    """'You are number 2 in the queue.' / '您排在第2位。'"""
    if lang.lower().startswith("zh"):
        return "您是下一位。" if position == 1 else f"您排在第{position}位。"
    return "You are next in line." if position == 1 else f"You are number {position} in the queue."
