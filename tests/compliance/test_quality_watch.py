"""Quality checks on the live transcript: an alert lands in the call record (and the after-call summary) at once."""

from __future__ import annotations

from voicebot.calls.conversation import Transcript
from voicebot.calls.quality_watch import quality_sink
from voicebot.compliance.lint import DEFAULT_POLICY_DIR, load_policies, policies_for
from voicebot.compliance.quality import LiveQualityCheck, QualityAlert
from voicebot.records.aftercall import summarize
from voicebot.records.journal import event_kind


def test_a_forbidden_promise_in_a_bot_line_is_a_quality_event_of_the_record_and_an_alert():
    recorded: list[dict] = []
    alerts: list[QualityAlert] = []
    transcript = Transcript()
    check = LiveQualityCheck(policies_for("finance", load_policies(DEFAULT_POLICY_DIR)))
    transcript.record_sink = quality_sink(check, recorded.append, alerts.append)
    transcript.add("caller", "tell me about your funds")  # a caller may say anything
    transcript.add("bot", "Our Gold fund has guaranteed returns of 5 percent.")  # e.g. text from a webhook
    transcript.add("system", "queued in sales", event="queue_joined", queue="sales")
    kinds = [event_kind(entry) for entry in recorded]
    assert kinds == ["caller", "bot", "quality", "queue_joined"]
    assert [(a.kind, a.rule, a.speaker) for a in alerts] == [("forbidden_phrase", "guaranteed returns", "bot")]
    summary = summarize([(event_kind(entry), entry) for entry in recorded])
    assert summary.qa_flags == ["guaranteed returns"]
