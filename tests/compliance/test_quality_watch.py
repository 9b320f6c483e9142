"""Quality checks on the live transcript: an alert lands in the call record (and the after-call summary) at once."""

from __future__ import annotations

import asyncio

import pytest

from voicebot.calls.conversation import Transcript
from voicebot.calls.events import record_entry
from voicebot.compliance.alerts import QualityAlert
from voicebot.calls.quality_watch import quality_observer
from voicebot.compliance.lint import DEFAULT_POLICY_DIR, load_policies, policies_for
from voicebot.compliance.quality import LiveQualityCheck
from voicebot.records.aftercall import summarize
from voicebot.records.journal import event_kind


def test_a_forbidden_promise_in_a_bot_line_is_a_quality_event_of_the_record_and_an_alert():
    recorded: list[dict] = []
    alerts: list[QualityAlert] = []
    transcript = Transcript()
    check = LiveQualityCheck(policies_for("finance", load_policies(DEFAULT_POLICY_DIR)))
    bus = transcript.events
    bus.subscribe(lambda event: recorded.append(entry) if (entry := record_entry(event)) else None)
    bus.subscribe(quality_observer(check, bus.publish))
    bus.subscribe(lambda event: alerts.append(event) if isinstance(event, QualityAlert) else None)
    transcript.add("caller", "tell me about your funds")  # a caller may say anything
    transcript.add("bot", "Our Gold fund has guaranteed returns of 5 percent.")  # e.g. text from a webhook
    transcript.add("system", "queued in sales", event="queue_joined", queue="sales")
    kinds = [event_kind(entry) for entry in recorded]
    assert kinds == ["caller", "bot", "quality", "queue_joined"]
    assert [(a.kind, a.rule, a.speaker) for a in alerts] == [("forbidden_phrase", "guaranteed returns", "bot")]
    summary = summarize([(event_kind(entry), entry) for entry in recorded])
    assert summary.qa_flags == ["guaranteed returns"]


def test_the_calls_steps_on_the_bus_drive_the_timed_rules_and_the_end_stops_them():
    from voicebot.calls.events import CallEnded, CallEvents, Line

    check = LiveQualityCheck(policies_for("finance", load_policies(DEFAULT_POLICY_DIR)))
    bus = CallEvents()
    alerts: list[QualityAlert] = []
    bus.subscribe(quality_observer(check, bus.publish))
    bus.subscribe(lambda event: alerts.append(event) if isinstance(event, QualityAlert) else None)
    check.answered(0.0)
    bus.publish(Line(1.0, "system", "queued in sales", {"event": "queue_joined", "queue": "sales"}))
    assert check.tick(20.5) == []  # waiting: no dead air
    bus.publish(Line(30.0, "system", "left the queue (callback)", {"event": "queue_left", "reason": "callback"}))
    assert [a.kind for a in check.tick(50.5)] == ["long_silence"]  # back with the bot, which said nothing
    bus.publish(Line(60.0, "caller", "hello?"))
    bus.publish(CallEnded("c1", "hangup", "caller_hangup"))
    assert check.tick(500.0) == []  # the call is over: nothing more to judge


def test_a_call_transferred_away_is_not_judged_for_dead_air():
    from voicebot.calls.events import CallEvents, Line

    check = LiveQualityCheck(policies_for("finance", load_policies(DEFAULT_POLICY_DIR)))
    bus = CallEvents()
    bus.subscribe(quality_observer(check, bus.publish))
    check.answered(0.0)
    bus.publish(Line(2.0, "caller", "put me through to sales"))
    bus.publish(Line(3.0, "system", "transferred to sip:sales@pbx", {"event": "transferred"}))
    assert check.tick(60.0) == []


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_one_ticker_judges_every_watched_call_and_stops_when_none_is_left():
    from voicebot.calls.events import CallEvents
    from voicebot.calls.quality_watch import QualityTicker

    now = [100.0]
    ticker = QualityTicker(lambda: now[0], every_s=0.001)
    flagged: dict[str, list[QualityAlert]] = {}
    both = asyncio.Event()

    def seen(name: str, event: object) -> None:
        if isinstance(event, QualityAlert):
            flagged[name].append(event)
        if flagged["c1"] and flagged["c2"]:
            both.set()

    unwatch = []
    for name in ("c1", "c2", "c3"):
        check = LiveQualityCheck(policies_for("finance", load_policies(DEFAULT_POLICY_DIR)))
        check.answered(100.0)  # the bot owes each caller a greeting
        bus = CallEvents(name)
        flagged[name] = []
        bus.subscribe(lambda event, name=name: seen(name, event))
        unwatch.append(ticker.watch(check, bus.publish))
    task = ticker.task
    assert task is not None and ticker.watched == 3
    unwatch[2]()  # c3 ended before the silence ran out
    now[0] = 1000.0
    await asyncio.wait_for(both.wait(), 5)
    assert ticker.task is task  # one task for all the calls
    assert [a.kind for a in flagged["c1"] + flagged["c2"]] == ["long_silence", "long_silence"] and not flagged["c3"]
    unwatch[0]()
    unwatch[1]()
    await asyncio.wait_for(task, 5)  # nothing left to watch: the ticker stops
    assert ticker.watched == 0
