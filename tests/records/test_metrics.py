"""Bot-side Prometheus metrics follow the call events: how calls ended, turns, nomatch, reply latency."""

from __future__ import annotations

from voicebot.records.journal import CallJournal
from voicebot.records.metrics import classify


def test_calls_turns_and_latency_are_counted_from_the_journal() -> None:
    journal = CallJournal(None)  # metrics work without a store
    journal.start("c1")
    sink = journal.sink("c1")
    sink({"who": "caller", "text": "balance", "intent": "check_balance"})
    sink({"who": "event", "text": "nomatch", "node": "menu"})
    journal.end("c1", outcome="completed", extra={"turns": [{"endpoint_ms": 300.0, "tts_first_ms": 150.0},
                                                            {"endpoint_ms": 800.0, "tts_first_ms": 900.0}]})
    journal.start("c2")
    journal.sink("c2")({"who": "system", "text": "queued in banking", "event": "queue_joined"})
    journal.sink("c2")({"who": "event", "text": "caller_hangup", "node": "queue"})
    journal.end("c2", outcome="")
    text = journal.metrics.prometheus()
    assert "voicebot_bot_calls_started_total 2" in text
    assert 'voicebot_bot_calls_ended_total{how="contained"} 1' in text
    assert 'voicebot_bot_calls_ended_total{how="abandoned_in_queue"} 1' in text
    assert 'voicebot_bot_turns_total{kind="nomatch"} 1' in text
    assert 'voicebot_bot_reply_seconds_bucket{le="0.5"} 1' in text  # 450 ms
    assert 'voicebot_bot_reply_seconds_bucket{le="1.5"} 1' in text and 'le="2"} 2' in text  # 1700 ms
    assert "voicebot_bot_reply_seconds_count 2" in text


def test_classification_matches_the_analytics_order() -> None:
    assert classify("agent", ["queue_joined", "agent_answered", "caller_hangup"]) == "transferred"
    assert classify("", ["queue_joined", "caller_hangup"]) == "abandoned_in_queue"
    assert classify("completed", []) == "contained"
    assert classify("", [], ended=False) == "in_progress_or_lost"
