"""The media ticker's periodic "media ticker" log line: per-window figures, a warning when >= 1 % of ticks are late."""

import asyncio
import logging
import time

import pytest

from voicebot.rtp.ticker import MediaTicker, log_media_stats


async def wait_until(predicate, limit=5.0):
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def media_records(caplog):
    return [r for r in caplog.records if r.getMessage() == "media ticker"]


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_windows_are_logged_only_with_calls_and_warn_when_late(caplog):
    caplog.set_level(logging.INFO, logger="voicebot.rtp.ticker")
    ticker = MediaTicker(period=0.01)
    reporter = asyncio.ensure_future(log_media_stats(ticker, period_s=0.4))
    try:
        slow = {"on": True}
        seen: list[int] = []

        def call(index: int) -> None:
            seen.append(index)
            if slow["on"] and index % 4 == 0:
                time.sleep(0.03)  # the next tick starts ~20 ms late

        ticker.add(call)
        await wait_until(lambda: len(media_records(caplog)) >= 1)
        first = media_records(caplog)[0]
        assert first.levelno == logging.WARNING
        assert first.fields["ticks"] > 5 and first.fields["late_ticks"] >= 1 and first.fields["late_pct"] >= 1.0
        assert first.fields["max_lateness_ms"] > 5.0 and first.fields["max_busy_ms"] >= 25.0
        assert first.fields["streams"] == 1 and first.fields["period_s"] == 0.4

        ticker.remove(call)  # no calls: the next windows log nothing
        count = len(media_records(caplog))
        await asyncio.sleep(1.0)
        assert len(media_records(caplog)) <= count + 1  # at most the window that was running at the removal
        count = len(media_records(caplog))
        await asyncio.sleep(0.9)
        assert len(media_records(caplog)) == count
    finally:
        reporter.cancel()
        ticker._halt()


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_take_window_is_independent_of_reset_stats():
    ticker = MediaTicker(period=0.005)
    seen: list[int] = []
    ticker.add(seen.append)
    await wait_until(lambda: len(seen) >= 6)
    ticker.reset_stats()  # a benchmark measuring its own window does not disturb the periodic log
    await wait_until(lambda: len(seen) >= 10)
    ticker.remove(seen.append)
    window = ticker.take_window()
    assert window["ticks"] == len(seen) and ticker.stats()["ticks"] < len(seen)
    assert ticker.take_window()["ticks"] == 0
    with pytest.raises(ValueError, match="positive"):
        await log_media_stats(ticker, period_s=0)
