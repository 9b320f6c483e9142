"""MediaTicker scheduling and fault isolation; PortAllocator pairs."""

import asyncio
import logging
import time

import pytest

from voicebot.rtp.ports import PortAllocator, PortsExhausted
from voicebot.rtp.ticker import MediaTicker, get_ticker


async def wait_until(predicate, limit=2.0):
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_absolute_schedule_does_not_drift(monkeypatch):
    loop = asyncio.get_running_loop()
    ticker = MediaTicker(period=0.01)
    scheduled = []
    original = loop.call_at
    monkeypatch.setattr(loop, "call_at", lambda when, cb, *a, **kw: (cb == ticker._tick and scheduled.append(when)) or original(when, cb, *a, **kw))
    seen = []
    ticker.add(lambda index: (seen.append(index), time.sleep(0.004)))  # slow callback
    await wait_until(lambda: len(seen) >= 8)
    ticker.remove(next(iter(ticker._callbacks)))
    start = scheduled[0] - 0.01
    assert seen[:8] == list(range(1, 9))
    for n, when in enumerate(scheduled[:8], start=1):
        assert when == pytest.approx(start + n * 0.01, abs=1e-9)
    assert not ticker.running


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_failing_callback_is_removed_and_others_continue(caplog):
    ticker = MediaTicker(period=0.005)
    good = []

    def bad(index):
        raise RuntimeError("boom")

    ticker.add(bad)
    ticker.add(good.append)
    with caplog.at_level(logging.ERROR, logger="voicebot.rtp.ticker"):
        await wait_until(lambda: len(good) >= 3)
    assert len(ticker) == 1 and ticker.errors == 1
    assert "failed; removed" in caplog.text and "boom" in caplog.text
    ticker.remove(good.append)
    assert not ticker.running and len(ticker) == 0


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_starts_on_first_add_stops_when_empty_and_restarts():
    ticker = MediaTicker(period=0.005)
    assert not ticker.running
    calls = []
    ticker.add(calls.append)
    assert ticker.running
    await wait_until(lambda: len(calls) >= 2)
    ticker.remove(calls.append)
    assert not ticker.running
    count = len(calls)
    await asyncio.sleep(0.03)
    assert len(calls) == count
    ticker.add(calls.append)
    await wait_until(lambda: len(calls) >= count + 2)
    assert calls[count] == 1  # a fresh schedule starts from tick 1
    ticker.remove(calls.append)


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_callback_removing_itself_and_re_adding_does_not_double_schedule():
    ticker = MediaTicker(period=0.005)
    calls = []

    def flip(index):
        calls.append(index)
        ticker.remove(flip)
        if len(calls) < 3:
            ticker.add(flip)

    ticker.add(flip)
    await wait_until(lambda: len(calls) >= 3)
    await asyncio.sleep(0.03)
    assert calls == [1, 1, 1] and not ticker.running


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_late_ticks_counted_and_long_stall_skips_ahead():
    ticker = MediaTicker(period=0.005, max_catch_up=3)
    calls = []

    def stall(index):
        calls.append(index)
        if index == 2:
            time.sleep(0.1)  # 20 periods

    ticker.add(stall)
    await wait_until(lambda: len(calls) >= 5)
    ticker.remove(stall)
    assert ticker.max_lateness > 0.05
    assert ticker.skipped_ticks >= 15
    assert calls[2] > 15  # resumed from the current time, not by bursting through missed ticks
    assert ticker.stats()["late_ratio"] > 0


def test_get_ticker_is_process_wide():
    assert get_ticker() is get_ticker()


def test_port_allocator_pairs_round_robin_and_release():
    allocator = PortAllocator(10001, 10008)  # even ports 10002, 10004, 10006 (RTCP +1 < 10008)
    assert allocator.capacity == 3
    ports = [allocator.acquire() for _ in range(3)]
    assert ports == [10002, 10004, 10006]
    with pytest.raises(PortsExhausted, match="all 3 RTP port pairs"):
        allocator.acquire()
    allocator.release(10004)
    assert allocator.acquire() == 10004
    allocator.release(10002)
    with pytest.raises(ValueError, match="not allocated"):
        allocator.release(10002)


def test_port_allocator_rejects_bad_ranges():
    for start, end in ((100, 200), (20000, 20001), (60000, 70000)):
        with pytest.raises(ValueError, match="RTP port range"):
            PortAllocator(start, end)


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_tick_fired_after_its_slot_is_counted_late():
    ticker = MediaTicker(period=0.01)
    calls = []

    def slow_once(index):
        calls.append(index)
        if index == 2:
            time.sleep(0.02)  # the next slot passes while this runs

    ticker.add(slow_once)
    await wait_until(lambda: len(calls) >= 4)
    ticker.remove(slow_once)
    assert calls[:4] == [1, 2, 3, 4]  # caught up, nothing skipped
    assert ticker.late_ticks >= 1 and ticker.skipped_ticks == 0
    assert ticker.max_lateness >= 0.005


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_lag_reports_a_stalled_loop_and_is_zero_while_idle():
    ticker = MediaTicker(period=0.01, stall_grace=0.0)
    assert ticker.lag() == 0.0
    ticks = []
    ticker.add(ticks.append)
    await wait_until(lambda: len(ticks) >= 3)
    assert ticker.lag() < 0.01
    time.sleep(0.2)  # the loop is blocked: the next tick is overdue right now
    assert ticker.lag() >= 0.15
    ticker.remove(ticks.append)
    assert ticker.lag() == 0.0


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_a_pause_shorter_than_the_grace_is_not_lag_but_a_longer_stall_is():
    ticker = MediaTicker(period=0.01, stall_grace=0.3)
    ticks: list[int] = []
    ticker.add(ticks.append)
    await wait_until(lambda: len(ticks) >= 3)
    time.sleep(0.15)  # the loop is blocked (a garbage collection): shorter than the grace
    assert ticker.lag() < 0.06
    time.sleep(0.35)  # still blocked: now a stall beyond the grace
    assert ticker.lag() >= 0.15
    ticker.remove(ticks.append)
