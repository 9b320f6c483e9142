"""The pure ACD: ordering, agent choice, no-answer, abandon, overflow, max wait, callbacks, wrap-up."""

from __future__ import annotations

import pytest

from voicebot.queues.acd import (
    Acd, AlreadyQueued, InvalidTransition, MaxWaitReached, Overflowed, QueueClosed, QueueFull, UnknownAgent,
    UnknownAssignment, UnknownQueue, WrapUpEnded,
)
from voicebot.queues.models import QueuesConfig


@pytest.fixture
def acd(agents_config, queues_config) -> Acd:
    return Acd(agents_config, queues_config)


def test_nobody_is_assigned_without_an_available_agent(acd):
    acd.enqueue("c1", "cards", now=0)
    assert acd.next_assignment(1) is None
    assert acd.position("c1", 5).position == 1


def test_highest_priority_first_then_longest_wait(acd):
    acd.enqueue("early", "cards", now=0)
    acd.enqueue("later", "cards", now=5)
    acd.enqueue("vip", "cards", priority=0, now=10, flags=("vip",))
    assert [p.call_id for p in acd.positions("cards", 11)] == ["vip", "early", "later"]
    acd.agent_state("a1", "available", 20)
    first = acd.next_assignment(20)
    assert (first.call_id, first.agent_id, first.priority) == ("vip", "a1", 10)
    assert acd.position("early", 21).position == 1


def test_longest_idle_agent_with_the_skills_is_chosen(acd):
    acd.agent_state("a2", "available", 0)
    acd.agent_state("a1", "available", 5)
    acd.agent_state("a3", "available", -10)  # idle longest but has no cards skill
    acd.enqueue("c1", "cards", now=10)
    assert acd.next_assignment(10).agent_id == "a2"
    assert acd.state.agents["a2"].state == "reserved"


def test_language_and_skill_level_requirements(acd):
    acd.agent_state("a1", "available", 0)  # English only
    acd.agent_state("a3", "available", 0)  # loans 5
    acd.enqueue("zh", "cards", ["lang:zh-CN"], now=1)
    assert acd.next_assignment(1) is None  # only a2 speaks Chinese, and a2 is offline
    acd.enqueue("loan", "loans", now=2)  # needs loans>=3: a1 has 2, a3 has 5
    assert acd.next_assignment(2).agent_id == "a3"
    acd.agent_state("a2", "available", 3)
    assignment = acd.next_assignment(3)
    assert (assignment.call_id, assignment.agent_id) == ("zh", "a2")


def test_malformed_skill_is_refused_at_enqueue(acd):
    with pytest.raises(ValueError, match="skill requirement"):
        acd.enqueue("c1", "cards", ["Cards!"], now=0)
    assert acd.state.entries == {}


def test_agent_no_answer_puts_caller_back_at_the_head_and_prefers_another_agent(acd):
    acd.enqueue("c1", "cards", now=0)
    acd.enqueue("c2", "cards", now=1)
    acd.agent_state("a1", "available", 2)
    offer = acd.next_assignment(3)
    assert offer.call_id == "c1"
    acd.enqueue("vip-later", "cards", now=4)
    acd.agent_no_answer(offer.id, 20)
    assert acd.position("c1", 20).position == 1  # ahead of c2, who waited less
    acd.agent_state("a2", "available", 25)
    again = acd.next_assignment(25)
    assert (again.call_id, again.agent_id) == ("c1", "a2")  # a1 did not answer: a2 is preferred
    assert again.id != offer.id


def test_caller_abandoning_while_agent_rings_frees_the_agent(acd):
    acd.agent_state("a1", "available", 0)
    acd.enqueue("c1", "cards", now=1)
    offer = acd.next_assignment(1)
    released = acd.abandon("c1", 3)
    assert released.was == "offered" and released.assignment.id == offer.id
    assert acd.state.agents["a1"].state == "available"
    assert acd.state.assignments == {}
    assert acd.state.stats["cards"].abandoned == 1
    with pytest.raises(UnknownAssignment):
        acd.agent_answered(offer.id, 4)


def test_abandon_while_waiting_and_unknown(acd):
    acd.enqueue("c1", "cards", now=0)
    assert acd.abandon("c1", 30).was == "waiting"
    assert acd.state.stats["cards"].total_abandon_wait_s == 30
    assert acd.abandon("c1", 31).was == "unknown"


def test_answer_end_wrap_up_then_available_records_handle_time(acd):
    acd.agent_state("a1", "available", 0)
    acd.enqueue("c1", "cards", now=0)
    offer = acd.next_assignment(5)
    acd.agent_answered(offer.id, 8)
    assert acd.state.agents["a1"].state == "busy"
    with pytest.raises(InvalidTransition):
        acd.agent_state("a1", "offline", 9)
    acd.call_ended("c1", 100)
    assert acd.state.agents["a1"].state == "wrap_up"
    assert acd.tick(105) == []
    assert acd.tick(110) == [WrapUpEnded("a1")]
    assert acd.state.agents["a1"].state == "available"
    stats = acd.state.stats["cards"]
    assert (stats.answered, stats.answered_within_sl, stats.handled, stats.aht_s) == (1, 1, 1, 102)  # 8 -> 110


def test_overflow_moves_caller_keeping_seniority(acd):
    acd.enqueue("c1", "cards", now=0)
    acd.enqueue("g1", "general", now=50)
    events = acd.tick(130)
    assert Overflowed("c1", "cards", "general") in events
    assert [p.call_id for p in acd.positions("general", 130)] == ["c1", "g1"]
    acd.agent_state("a3", "available", 131)  # a loans agent serves "general", which needs no skill
    assert acd.next_assignment(131).call_id == "c1"


def test_max_wait_reported_once(acd):
    acd.enqueue("c1", "loans", now=0)
    queues = acd.queues
    assert queues["loans"].max_wait_s is None
    acd.enqueue("c2", "cards", now=0)
    assert [e for e in acd.tick(299) if isinstance(e, MaxWaitReached)] == []
    first = [e for e in acd.tick(300) if isinstance(e, MaxWaitReached)]
    assert first == [MaxWaitReached("c2", "general", "callback", "local")]  # overflowed, cards' limit still holds
    assert [e for e in acd.tick(400) if isinstance(e, MaxWaitReached)] == []


def test_queue_full_closed_unknown_and_duplicate(acd, agents_config):
    for index in range(3):
        acd.enqueue(f"c{index}", "cards", now=index)
    with pytest.raises(QueueFull, match="full"):
        acd.enqueue("c9", "cards", now=5)
    with pytest.raises(AlreadyQueued):
        acd.enqueue("c0", "loans", now=5)
    with pytest.raises(UnknownQueue, match="known: cards, general, loans"):
        acd.enqueue("c10", "nope", now=5)
    with pytest.raises(UnknownAgent):
        acd.agent_state("zz", "available", 5)
    closed = QueuesConfig.model_validate({"queues": [{"name": "night", "business_hours": {
        "timezone": "UTC", "weekly": {"mon": ["09:00-17:00"]}}}]})
    with pytest.raises(QueueClosed):
        Acd(agents_config, closed).enqueue("c1", "night", now=0)  # 1970-01-01 was a Thursday


def test_callback_keeps_place_and_retries(acd):
    acd.enqueue("c1", "cards", now=0)
    acd.enqueue("c2", "cards", now=10)
    task = acd.request_callback("c1", "+15550100", now=20)
    assert "c1" not in acd.state.entries and task.enqueued_at == 0
    acd.agent_state("a1", "available", 30)
    offer = acd.next_assignment(30)
    assert (offer.kind, offer.call_id, offer.callback_number) == ("callback", "c1", "+15550100")
    acd.agent_answered(offer.id, 31)
    retried = acd.callback_failed(offer.id, 60, retry_after_s=100)
    assert retried.attempts == 1 and retried.not_before == 160
    assert acd.state.agents["a1"].state == "available"
    second = acd.next_assignment(61)
    assert second.call_id == "c2"  # the callback is not due yet
    acd.agent_state("a2", "available", 170)
    third = acd.next_assignment(170)
    assert third.kind == "callback"
    acd.agent_answered(third.id, 171)
    acd.call_ended("c1", 200)
    assert acd.state.callbacks == {} and acd.state.stats["cards"].callbacks_done == 1


def test_agent_going_offline_while_reserved_requeues_caller(acd):
    acd.agent_state("a1", "available", 0)
    acd.enqueue("c1", "cards", now=1)
    acd.next_assignment(1)
    acd.agent_state("a1", "offline", 2)
    assert acd.state.agents["a1"].state == "offline"
    assert acd.position("c1", 2).position == 1
