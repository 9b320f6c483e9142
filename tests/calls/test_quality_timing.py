"""The timed quality rules through the real path of a call: a CallLifecycle watching a healthcare call, its events
bus fed the way the session and the live transcript feed it (queue_joined / agent_answered lines, the live
transcript's note, its voice activity and its caller/agent lines with start times, written through the call's entry
sink), the
quality ticker judging the time — each alert reaches the supervisor hook and the call record once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from voicebot.calls.events import Line
from voicebot.compliance.alerts import QualityAlert
from voicebot.calls.keypad_session import CallRecord
from voicebot.calls.lifecycle import CallLifecycle, CallServices, LegEnd
from voicebot.calls.quality_watch import QualityTicker
from voicebot.calls.recording import CallRecorder
from voicebot.channels.base import Channel
from voicebot.compliance.lint import DEFAULT_POLICY_DIR, load_policies
from voicebot.records.journal import CallJournal
from voicebot.records.store import SqliteRecordStore


class QuietLeg:
    """A leg with nothing to record or release (the test speaks for both sides through the bus)."""

    kind = "text"

    @property
    def channel(self) -> Channel:
        raise AssertionError("no media in this test")

    def record_to(self, directory: Path) -> CallRecorder:
        raise AssertionError("not recorded")

    def stop_recording(self) -> None:
        return None

    async def release(self) -> None:
        return None

    def ended(self) -> LegEnd:
        return LegEnd(end_reason="caller_hangup")


class Clock:
    """The call's clock, set by the test; `read(n)` waits until the ticker has looked at it n more times."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.reads = 0
        self._changed = asyncio.Condition()

    def __call__(self) -> float:
        self.reads += 1
        asyncio.get_running_loop().create_task(self._notify())
        return self.now

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def read(self, times: int) -> None:
        target = self.reads + times
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.reads >= target), 5)


async def alert_count(alerts: list[QualityAlert], count: int, clock: Clock) -> None:
    """Wait until ``count`` alerts came, for at most 200 of the ticker's looks at the clock."""
    for _ in range(200):
        if len(alerts) >= count:
            return
        await clock.read(1)
    raise AssertionError(f"{count} alerts expected, got {[a.kind for a in alerts]}")


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_long_wait_talk_over_and_silence_on_the_bridge_each_alert_once_into_the_record(
        tmp_path: Path) -> None:
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    journal = CallJournal(store)
    alerts: list[QualityAlert] = []
    t0 = 1_800_000_000.0
    clock = Clock(t0)
    ticker = QualityTicker(clock, every_s=0.001)
    services = CallServices(journal=journal, policies=load_policies(DEFAULT_POLICY_DIR),
                            on_quality_alert=lambda _call, _plan, flag: alerts.append(flag), quality_ticker=ticker)
    record = CallRecord(call_id="call-19", from_="5550100", to="clinic")
    async with CallLifecycle(QuietLeg(), record, services) as life:
        life.start(caller="5550100", callee="clinic", dialplan="healthcare")
        life.watch_quality("healthcare")
        publish: Callable[[Line], None] = life.events.publish
        publish(Line(t0 + 1, "bot", "Let me find you a nurse."))
        publish(Line(t0 + 2, "system", "queued in nurses", {"event": "queue_joined", "queue": "nurses"}))
        clock.now = t0 + 32  # 30 s in: the queue's announcement, then another 60 s without news
        publish(Line(t0 + 32, "bot", "You are number 2 in line."))
        clock.now = t0 + 92
        await clock.read(3)
        assert alerts == []  # exactly 60 s since the announcement
        clock.now = t0 + 92.5
        await alert_count(alerts, 1, clock)
        clock.now = t0 + 100
        await clock.read(3)
        publish(Line(t0 + 100, "system", "connected to agent n1", {"event": "agent_answered", "agent": "n1"}))
        life.entry_sink({"t": t0 + 100, "event": "live_transcript", "queue": "nurses"})
        # voice activity on both legs as the utterances end: the agent started 1500 ms before the caller's end
        life.entry_sink({"t": t0 + 105, "spoke": "caller", "start": t0 + 101})
        life.entry_sink({"t": t0 + 106, "spoke": "agent", "start": t0 + 103.5})
        assert [a.kind for a in alerts] == ["long_hold", "talk_over"]  # before any word was recognised
        life.entry_sink({"t": t0 + 105, "who": "caller", "text": "my daughter has a fever since", "start": t0 + 101,
                         "live": True})
        life.entry_sink({"t": t0 + 106, "who": "agent", "text": "ok ok what is her temperature",
                         "start": t0 + 103.5, "live": True})  # the same utterances' words: no second alert
        life.entry_sink({"t": t0 + 110, "spoke": "caller", "start": t0 + 108})  # too late to be recognised
        clock.now = t0 + 130
        await clock.read(3)
        assert len(alerts) == 2  # 20 s after the caller's unrecognised words
        clock.now = t0 + 130.5
        await alert_count(alerts, 3, clock)
        clock.now = t0 + 300
        await clock.read(3)
    assert journal.flush()
    assert [(a.kind, a.rule, a.policy) for a in alerts] == [
        ("long_hold", "max_hold_s", "healthcare"), ("talk_over", "talk_over_ms", "healthcare"),
        ("long_silence", "max_silence_s", "common")]
    assert alerts[1].at == t0 + 103.5 and alerts[1].speaker == "agent"
    quality = [e.data for e in store.events("call-19") if e.kind == "quality"]
    assert [q["kind"] for q in quality] == ["long_hold", "talk_over", "long_silence"]
    kinds = [e.kind for e in store.events("call-19")]
    assert kinds[-1] == "call_ended" and "live_transcript" in kinds and kinds.count("caller") == 1  # no Spoke rows
    task = ticker.task
    assert task is not None and ticker.watched == 0  # the teardown stopped the ticker watching the call
    await asyncio.wait([task], timeout=5)
    assert task.done() and not task.cancelled()  # with no call left to watch the ticker stops
    journal.close()
