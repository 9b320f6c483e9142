"""Live quality checks against the shipped industry policies: phrases, disclaimers, and the timed rules (waits,
silence, talk-over) with the strictest limit of the applying policies; bad timed rules at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.compliance.lint import DEFAULT_POLICY_DIR, load_policies, load_policy, policies_for
from voicebot.compliance.quality import LiveQualityCheck, Said
from voicebot.yamlsrc import ConfigErrors, YamlSourceError


def check_for(dialplan: str) -> LiveQualityCheck:
    return LiveQualityCheck(policies_for(dialplan, load_policies(DEFAULT_POLICY_DIR)))


def test_an_agent_promising_returns_is_flagged_at_once_in_english_and_mandarin():
    check = check_for("finance")
    alerts = check.heard(Said("agent", "Honestly this fund has guaranteed returns", 10.0, 13.0))
    assert [(a.kind, a.rule, a.speaker, a.at) for a in alerts] == [("forbidden_phrase", "guaranteed returns",
                                                                   "agent", 13.0)]
    assert [a.rule for a in check.heard(Said("agent", "这款产品保本保息", 20.0, 22.0))] == ["保本保息"]
    assert check.heard(Said("caller", "is it guaranteed returns?", 23.0, 25.0)) == []  # callers may say anything
    assert check.report().score == 40


def test_product_talk_before_the_risk_disclaimer_is_flagged_once_and_not_after_it_was_said():
    late = check_for("finance")
    first = late.heard(Said("agent", "The expected return is four percent", 5.0, 7.0))
    assert [(a.kind, a.rule) for a in first] == [("missing_disclaimer", "investment_risk")]
    assert late.heard(Said("agent", "and the annualised figure is similar", 8.0, 9.0)) == []  # once per call
    told = check_for("finance")
    assert told.heard(Said("bot", "Investment products are not deposits and carry risk.", 1.0, 3.0)) == []
    assert told.heard(Said("agent", "The expected return is four percent", 5.0, 7.0)) == []
    assert told.report().disclaimers_said == ("finance:investment_risk",)


def test_a_wait_longer_than_the_healthcare_limit_alerts_once_naming_the_strictest_policy():
    check = check_for("healthcare")
    check.answered(0.0)
    check.queued(10.0)
    assert check.tick(70.0) == []
    [alert] = check.tick(71.0)
    assert (alert.kind, alert.policy, alert.rule) == ("long_hold", "healthcare", "max_hold_s")
    assert "60 s" in alert.detail  # healthcare's 60 s, stricter than common's 120
    assert check.tick(90.0) == []
    check.agent_answered(95.0)
    assert check.tick(100.0) == []
    assert check.report().score == 90


def test_silence_while_bridged_and_transcribed_alerts_once_until_someone_speaks():
    check = check_for("ecommerce")
    check.answered(0.0)
    check.heard(Said("bot", "Connecting you now.", 0.0, 1.0))
    check.queued(1.0)
    assert check.tick(30.0) == []  # waiting: the hold rule's business, not a silence
    check.agent_answered(31.0)
    check.transcribing()
    assert check.tick(51.0) == []
    [alert] = check.tick(51.5)
    assert (alert.kind, alert.policy, alert.rule) == ("long_silence", "common", "max_silence_s")
    assert check.tick(60.0) == []
    check.heard(Said("agent", "Sorry, still there?", 61.0, 62.0))
    assert check.tick(82.0) == []
    assert [a.kind for a in check.tick(82.5)] == ["long_silence"]


@pytest.mark.parametrize("agent_first", [True, False])
def test_an_agent_starting_inside_the_callers_turn_and_overlapping_it_is_talking_over(agent_first: bool):
    check = check_for("finance")  # finance: 1500 ms, stricter than common's 2000
    caller, agent = Said("caller", "I wanted to ask about the", 10.0, 15.0), Said("agent", "Yes yes", 13.5, 16.0)
    for said in ((agent, caller) if agent_first else (caller, agent)):
        check.heard(said)
    [alert] = check.report().alerts
    assert (alert.kind, alert.at, alert.policy, alert.rule) == ("talk_over", 13.5, "finance", "talk_over_ms")
    assert "1500 ms" in alert.detail
    lenient = check_for("education")  # common's 2000 ms only
    lenient.heard(Said("caller", "I wanted to ask", 10.0, 15.0))
    assert lenient.heard(Said("agent", "Yes yes", 13.5, 16.0)) == []
    polite = check_for("finance")
    polite.heard(Said("caller", "I wanted to ask", 10.0, 15.0))
    assert polite.heard(Said("agent", "Of course", 15.2, 16.0)) == []  # after the caller, not over them
    brief = check_for("finance")
    brief.heard(Said("caller", "I wanted to ask", 10.0, 15.0))
    assert brief.heard(Said("agent", "mm-hm", 13.0, 13.6)) == []  # a backchannel, shorter than the limit


def test_the_shipped_industries_carry_the_timed_limits():
    by_name = {p.policy: p.quality for p in load_policies(DEFAULT_POLICY_DIR)}
    assert {name: (q.max_silence_s, q.max_hold_s, q.talk_over_ms) for name, q in by_name.items() if q} == {
        "common": (20, 120, 2000), "finance": (20, 90, 1500), "healthcare": (20, 60, 1500)}


@pytest.mark.parametrize(("body", "line", "key"), [
    ("quality:\n  max_hold_s: -5\n", 4, "max_hold_s"),
    ("quality:\n  max_silence_s: 20\n  talk_over_ms: 50\n", 5, "talk_over_ms"),
    ("quality:\n  max_talk_over_s: 2\n", 4, "max_talk_over_s"),
])
def test_a_bad_timed_rule_names_the_file_and_line(tmp_path: Path, body: str, line: int, key: str):
    path = tmp_path / "bad.yaml"
    path.write_text("policy: bad\napplies_to: ['*']\n" + body)
    with pytest.raises((ConfigErrors, YamlSourceError)) as caught:
        load_policy(path)
    assert f"bad.yaml:{line}" in str(caught.value) and key in str(caught.value)
