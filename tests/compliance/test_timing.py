"""The timed quality rules (voicebot.compliance.timing): dead air, a wait without news, the agent talking over the
caller — each at its limit exactly, and each once per episode."""

from __future__ import annotations

import pytest

from voicebot.compliance.alerts import QualityAlert
from voicebot.compliance.timing import Span, TimedLimits, TimedRules

LIMITS = TimedLimits(max_silence_s=20.0, max_hold_s=60.0, talk_over_ms=1500.0)


def rules(**limits: float) -> TimedRules:
    return TimedRules(TimedLimits(**{**vars(LIMITS), **limits}))


def kinds(alerts: list[QualityAlert]) -> list[str]:
    return [a.kind for a in alerts]


def bridged(at: float = 0.0) -> TimedRules:
    call = rules()
    call.answered(at)
    call.queued(at)
    call.agent_answered(at)
    call.transcribing()
    return call


# ------------------------------------------------------------------ silence
def test_silence_on_a_bridged_call_fires_just_past_the_limit_once_per_quiet_stretch() -> None:
    call = bridged(100.0)
    assert call.tick(120.0) == []  # exactly 20 s: not longer than the limit
    [alert] = call.tick(120.25)
    assert (alert.kind, alert.rule, alert.at, alert.speaker) == ("long_silence", "max_silence_s", 120.25, None)
    assert "20 s" in alert.detail
    assert call.tick(121.0) == [] and call.tick(500.0) == []  # one alert for the stretch, however long
    assert call.spoke(Span("agent", 500.0, 502.0)) == []  # a line starts a new stretch, from its end
    assert call.tick(522.0) == []
    assert kinds(call.tick(522.5)) == ["long_silence"]


def test_a_late_line_ending_before_a_later_one_does_not_move_the_silence_back() -> None:
    call = bridged(0.0)
    call.spoke(Span("agent", 5.0, 10.0))
    call.spoke(Span("caller", 2.0, 4.0))  # recognised late: the quiet stretch still runs from 10
    assert call.tick(30.0) == [] and kinds(call.tick(30.5)) == ["long_silence"]


def test_a_bridge_without_a_live_transcript_or_a_queue_wait_is_not_judged_for_silence() -> None:
    call = rules()
    call.answered(0.0)
    call.queued(1.0)
    assert [a.kind for a in call.tick(50.0)] == []  # waiting: the hold rule's business (60 s)
    call.agent_answered(55.0)
    assert call.tick(200.0) == []  # no transcript of the bridge: nothing to judge silence by
    call.transcribing()
    assert kinds(call.tick(200.0)) == ["long_silence"]  # from the agent's answer on


def test_the_bot_owes_a_greeting_and_a_reply_to_each_caller_line_but_not_the_callers_own_silence() -> None:
    call = rules()
    call.answered(0.0)
    assert call.tick(20.0) == []
    [greeting] = call.tick(20.1)
    assert (greeting.kind, greeting.speaker) == ("long_silence", "bot") and "dead air" in greeting.detail
    call.spoke(Span("bot", 21.0, 23.0))
    assert call.tick(300.0) == []  # the caller's turn: no dead air the bot owes
    call.spoke(Span("caller", 300.0, 302.0))
    assert call.tick(322.0) == []
    assert kinds(call.tick(322.5)) == ["long_silence"] and call.tick(340.0) == []
    call.spoke(Span("bot", 341.0, 342.0))
    call.spoke(Span("caller", 343.0, 345.0))
    assert call.tick(365.0) == [] and kinds(call.tick(365.01)) == ["long_silence"]  # a new episode alerts again


def test_a_bot_that_replies_in_time_is_not_flagged_while_the_caller_thinks() -> None:
    call = rules()
    call.answered(0.0)
    call.spoke(Span("bot", 1.0, 4.0))
    assert call.tick(60.0) == []
    call.spoke(Span("caller", 60.0, 62.0))
    call.spoke(Span("bot", 63.0, 65.0))
    assert call.tick(120.0) == []


def test_nothing_is_judged_before_the_answer_or_after_the_end() -> None:
    call = rules()
    assert call.tick(1000.0) == []
    call.answered(0.0)
    call.queued(1.0)
    call.ended()
    assert call.tick(1000.0) == []


# ------------------------------------------------------------------ hold
def test_a_wait_without_news_fires_once_and_an_announcement_starts_a_new_episode() -> None:
    call = rules()
    call.answered(0.0)
    call.queued(10.0)
    assert call.tick(70.0) == []  # exactly 60 s
    [alert] = call.tick(70.5)
    assert (alert.kind, alert.rule, alert.speaker) == ("long_hold", "max_hold_s", None)
    assert "60 s" in alert.detail and "announcement" in alert.detail
    assert call.tick(150.0) == []  # once per episode
    call.spoke(Span("bot", 150.0, 154.0))  # the queue's position/wait announcement
    assert call.tick(214.0) == []
    assert kinds(call.tick(214.5)) == ["long_hold"]
    call.agent_answered(220.0)
    assert call.tick(400.0) == []  # with an agent (no live transcript: no silence either)


def test_announcements_every_30_s_keep_a_60_s_wait_quiet() -> None:
    call = rules()
    call.answered(0.0)
    call.queued(0.0)
    for at in range(30, 600, 30):  # the ACD's default announce interval
        assert call.tick(at - 0.01) == []
        call.spoke(Span("bot", at, at + 3.0))
    assert call.tick(600.0) == []


def test_a_caller_leaving_the_queue_is_owed_a_reply_by_the_bot_not_a_hold_alert() -> None:
    call = rules()
    call.answered(0.0)
    call.queued(1.0)
    call.left_queue(30.0)
    assert call.tick(50.0) == []
    assert kinds(call.tick(50.5)) == ["long_silence"]  # the bot went quiet after taking the caller back


# ------------------------------------------------------------------ talk-over
@pytest.mark.parametrize("agent_first", [True, False])
def test_an_agent_overlapping_the_caller_exactly_the_limit_is_talking_over_in_any_arrival_order(
        agent_first: bool) -> None:
    call = rules()
    caller, agent = Span("caller", 10.0, 15.0), Span("agent", 13.5, 16.0)  # 1500 ms over the caller
    first, second = (agent, caller) if agent_first else (caller, agent)
    assert call.spoke(first) == []
    [alert] = call.spoke(second)
    assert (alert.kind, alert.rule, alert.at, alert.speaker) == ("talk_over", "talk_over_ms", 13.5, "agent")
    assert "1500 ms" in alert.detail


def test_float_noise_at_the_limit_still_counts_and_one_ms_short_does_not() -> None:
    noisy = rules(talk_over_ms=1700.0)
    noisy.spoke(Span("caller", 10.0, 15.0))
    assert kinds(noisy.spoke(Span("agent", 13.3, 15.5))) == ["talk_over"]  # 15 - 13.3 = 1.6999999999999993
    short = rules()
    short.spoke(Span("caller", 10.0, 15.0))
    assert short.spoke(Span("agent", 13.501, 16.0)) == []  # 1499 ms


def test_starting_after_the_caller_or_before_them_is_not_talking_over() -> None:
    call = rules()
    call.spoke(Span("caller", 10.0, 15.0))
    assert call.spoke(Span("agent", 15.0, 18.0)) == []  # right at the caller's end: a turn, not an interruption
    assert call.spoke(Span("agent", 8.0, 14.0)) == []  # the agent had the floor: the caller talked over them
    same = rules()
    same.spoke(Span("caller", 10.0, 15.0))
    assert kinds(same.spoke(Span("agent", 10.0, 12.0))) == ["talk_over"]  # both at once: the agent did not yield


def test_one_interruption_is_one_alert_however_the_lines_are_cut() -> None:
    call = rules()
    call.spoke(Span("caller", 10.0, 14.0))
    assert kinds(call.spoke(Span("agent", 11.0, 20.0))) == ["talk_over"]
    assert call.spoke(Span("caller", 10.5, 13.0)) == []  # the same agent line over another cut of the caller
    assert call.spoke(Span("agent", 12.0, 13.9)) == []  # another agent line over the caller line already flagged
    assert kinds(call.spoke(Span("caller", 30.0, 35.0)) + call.spoke(Span("agent", 31.0, 34.0))) == ["talk_over"]


def test_an_utterance_heard_twice_voice_first_then_words_is_one_talk_over_and_one_silence_reset() -> None:
    call = bridged(0.0)
    call.spoke(Span("caller", 10.0, 15.0))
    assert kinds(call.spoke(Span("agent", 13.0, 16.0))) == ["talk_over"]
    assert call.spoke(Span("caller", 10.0, 15.0)) == [] and call.spoke(Span("agent", 13.0, 16.0)) == []
    assert call.tick(36.0) == [] and kinds(call.tick(36.5)) == ["long_silence"]


def test_a_timed_alert_names_the_policy_whose_limit_applies() -> None:
    call = TimedRules(LIMITS, policy_of={"max_hold_s": "banking"})
    call.answered(0.0)
    call.queued(0.0)
    [alert] = call.tick(61.0)
    assert alert == QualityAlert("long_hold", 61.0, "banking", "max_hold_s", alert.detail)
    assert alert.entry()["policy"] == "banking" and alert.entry()["event"] == "quality"
