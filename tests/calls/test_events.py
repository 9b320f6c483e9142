"""The call's event bus (voicebot.calls.events): observers in subscription order, every event to all of them before
the next, an observer that raises is isolated, unsubscribe works, and the transcript publishes its lines."""

from __future__ import annotations

import logging

import pytest

from voicebot.calls.conversation import Transcript
from voicebot.calls.events import CallEvent, CallEvents, CallStarted, Line, Measured, record_entry
from voicebot.compliance.alerts import QualityAlert


def test_observers_get_every_event_in_subscription_order() -> None:
    bus = CallEvents("c1")
    seen: list[tuple[str, str]] = []
    bus.subscribe(lambda event: seen.append(("first", type(event).__name__)))
    bus.subscribe(lambda event: seen.append(("second", type(event).__name__)))
    bus.publish(CallStarted("c1", "sip"))
    bus.publish(Line(1.0, "bot", "Welcome."))
    assert seen == [("first", "CallStarted"), ("second", "CallStarted"), ("first", "Line"), ("second", "Line")]


def test_an_event_published_by_an_observer_waits_until_the_current_one_reached_everybody() -> None:
    bus = CallEvents("c1")
    seen: list[tuple[str, str]] = []

    def flagger(event: CallEvent) -> None:
        seen.append(("flagger", type(event).__name__))
        if isinstance(event, Line):
            bus.publish(QualityAlert("forbidden_phrase", event.at, "p", "r", "", "bot"))

    bus.subscribe(flagger)
    bus.subscribe(lambda event: seen.append(("writer", type(event).__name__)))
    bus.publish(Line(1.0, "bot", "guaranteed"))
    assert seen == [("flagger", "Line"), ("writer", "Line"), ("flagger", "QualityAlert"),
                    ("writer", "QualityAlert")]


def test_an_observer_that_raises_is_logged_and_the_others_still_get_the_event(
        caplog: pytest.LogCaptureFixture) -> None:
    bus = CallEvents("c1")
    seen: list[CallEvent] = []

    def broken(event: CallEvent) -> None:
        raise RuntimeError("observer bug")

    bus.subscribe(seen.append)
    bus.subscribe(broken)
    bus.subscribe(seen.append)
    with caplog.at_level(logging.ERROR, logger="voicebot.calls.events"):
        bus.publish(Line(1.0, "caller", "hello"))
        bus.publish(Line(2.0, "bot", "hi"))  # the bus keeps working after a failure
    assert [e.text for e in seen if isinstance(e, Line)] == ["hello", "hello", "hi", "hi"]
    assert bus.failures == 2
    failures = [r for r in caplog.records if r.getMessage() == "call event observer failed"]
    assert len(failures) == 2 and failures[0].exc_info is not None
    assert failures[0].fields["call_id"] == "c1" and failures[0].fields["event"] == "Line"  # type: ignore[attr-defined]


def test_unsubscribe_stops_delivery_to_that_observer_only() -> None:
    bus = CallEvents()
    first: list[CallEvent] = []
    second: list[CallEvent] = []
    stop_first = bus.subscribe(first.append)
    bus.subscribe(second.append)
    bus.publish(Measured(1.0, "turn", {"reply_ms": 700}))
    stop_first()
    stop_first()  # twice is harmless
    bus.publish(Measured(2.0, "turn", {"reply_ms": 800}))
    assert len(first) == 1 and len(second) == 2


def test_events_are_frozen() -> None:
    line = Line(1.0, "caller", "text", {"kind": "dtmf"})
    with pytest.raises(AttributeError):
        line.text = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        line.extras["kind"] = "other"  # type: ignore[index]


def test_transcript_keeps_its_entries_and_publishes_redacted_lines_and_measurements() -> None:
    transcript = Transcript()
    published: list[CallEvent] = []
    transcript.events.subscribe(published.append)
    transcript.add("caller", "my card is 4111 1111 1111 1111", intent="pay")
    transcript.measure("turn", reply_ms=640, asr_ms=210)
    [line, measured] = published
    assert isinstance(line, Line) and isinstance(measured, Measured)
    assert "4111 1111 1111 1111" not in line.text and line.extras == {"intent": "pay"}
    assert transcript.entries == [line.entry()]
    assert list(line.entry()) == ["t", "who", "text", "intent"]
    assert record_entry(measured) == {"t": measured.at, "event": "turn", "reply_ms": 640, "asr_ms": 210}
    assert record_entry(CallStarted("c1", "sip")) is None


def test_an_entry_written_from_outside_the_session_becomes_the_same_record_entry() -> None:
    from voicebot.calls.events import Noted, entry_event, entry_sink

    live = {"t": 2.5, "who": "agent", "text": "hello", "start": 1.0, "live": True}
    assist = {"t": 3.0, "event": "assist", "article": "kb-1", "score": 0.6}
    line, noted = entry_event(live), entry_event(assist)
    assert isinstance(line, Line) and line.spoken and record_entry(line) == live
    assert isinstance(noted, Noted) and record_entry(noted) == assist
    bus = CallEvents()
    seen: list[CallEvent] = []
    bus.subscribe(seen.append)
    entry_sink(bus)(live)
    assert seen == [line]


def test_voice_activity_of_a_bridged_leg_is_an_event_for_the_checks_but_no_row_of_the_record():
    from voicebot.calls.events import Spoke, entry_event, record_entry

    spoke = entry_event({"t": 12.5, "spoke": "agent", "start": 10.0})
    assert spoke == Spoke(12.5, "agent", 10.0) and record_entry(spoke) is None
