"""Orphan detection and cleanup: records of a lost node (no heartbeat, or restarted) and what a survivor does."""

from __future__ import annotations

import pytest

from voicebot.queues.acd import Acd
from voicebot.queues.orphans import Orphans, find_orphans, is_lost, recover
from voicebot.queues.state import decode_state, encode_state


@pytest.fixture
def acd(agents_config, queues_config) -> Acd:
    acd = Acd(agents_config, queues_config)
    acd.enqueue("a-1", "cards", now=10, node="node-a", context="ctx-a1")
    acd.enqueue("b-1", "cards", now=11, node="node-b", context="ctx-b1")
    acd.enqueue("a-2", "cards", now=12, node="node-a", context="ctx-a2")
    acd.enqueue("b-2", "loans", now=13, node="node-b", context="ctx-b2")
    return acd


LIVE_A = {"node-a": 1.0}
BOTH = {"node-a": 1.0, "node-b": 2.0}


def test_is_lost_without_heartbeat_after_restart_and_not_for_records_newer_than_the_snapshot():
    assert not is_lost("node-a", 10, {"node-a": 5}, now=20)
    assert is_lost("node-b", 10, {"node-a": 5}, now=20)  # no heartbeat
    assert is_lost("node-a", 4, {"node-a": 5}, now=20)  # made by the process before the restart
    assert not is_lost("node-b", 21, {"node-a": 5}, now=20)  # newer than the live snapshot: not judged


def test_nothing_is_orphaned_while_every_node_is_alive(acd):
    assert not find_orphans(acd.state, BOTH, now=50)


def test_entries_of_a_node_without_heartbeat_are_orphans(acd):
    orphans = find_orphans(acd.state, LIVE_A, now=50)
    assert orphans == Orphans(entries=("b-1", "b-2"))
    assert orphans.call_ids(acd.state) == ["b-1", "b-2"]


def test_lost_callers_become_callbacks_owned_by_the_survivor_and_positions_close_up(acd):
    orphans = find_orphans(acd.state, LIVE_A, now=50)
    lost = recover(acd, orphans, 50, {"b-1": "+15550101", "b-2": None}, node="node-a")
    assert [(c.call_id, c.node, c.context_id, c.outcome, c.callback) for c in lost] == [
        ("b-1", "node-b", "ctx-b1", "node lost → callback queued", True),
        ("b-2", "node-b", "ctx-b2", "node lost → no callback number", False)]
    assert lost[0].waited_s == 39
    assert set(acd.state.entries) == {"a-1", "a-2"}
    assert [p.position for p in acd.positions("cards", 50)] == [1, 2]
    task = acd.state.callbacks["cb:b-1"]
    assert (task.number, task.node, task.context_id, task.enqueued_at, task.queue) == (
        "+15550101", "node-a", "ctx-b1", 11, "cards")
    assert acd.state.stats["cards"].callbacks_requested == 1
    assert acd.state.stats["loans"].abandoned == 0  # a crash is not the caller's impatience
    # The callback keeps the lost caller's place: the next free agent calls them back before a-2.
    acd.agent_state("a1", "available", 51)
    assert acd.next_assignment(51).call_id == "a-1"
    acd.agent_state("a2", "available", 52)
    first_back = acd.next_assignment(52)
    assert (first_back.kind, first_back.call_id, first_back.node) == ("callback", "b-1", "node-a")


def test_an_agent_rung_by_the_lost_node_is_released_and_the_caller_recovered(acd):
    acd.agent_state("a1", "available", 20)
    acd.state.entries["a-1"].node = "node-b"  # make b's caller the oldest so it is offered
    acd.state.entries.pop("a-2")
    offered = acd.next_assignment(21)
    assert (offered.call_id, offered.node, acd.state.agents["a1"].state) == ("a-1", "node-b", "reserved")
    idle_since = acd.state.agents["a1"].idle_since
    orphans = find_orphans(acd.state, LIVE_A, now=30)
    assert orphans.assignments == (offered.id,) and orphans.call_ids(acd.state)[-1] == "a-1"
    lost = recover(acd, orphans, 30, {"a-1": "+15550100"}, node="node-a")
    assert {c.call_id for c in lost} == {"a-1", "b-1", "b-2"}
    agent = acd.state.agents["a1"]
    assert (agent.state, agent.assignment_id, agent.idle_since, agent.no_answers) == ("available", None, idle_since, 0)
    assert acd.state.assignments == {} and acd.state.entries == {}
    assert acd.state.callbacks["cb:a-1"].node == "node-a"


def test_an_agent_talking_through_the_lost_node_goes_to_wrap_up(acd):
    acd.agent_state("a1", "available", 20)
    acd.state.entries["a-1"].node = "node-b"
    acd.state.entries.pop("a-2")
    offered = acd.next_assignment(21)
    acd.agent_answered(offered.id, 22)
    lost = recover(acd, find_orphans(acd.state, LIVE_A, now=30), 30, {}, node="node-a")
    assert ("a-1", "node lost during agent call", False) in [(c.call_id, c.outcome, c.callback) for c in lost]
    assert acd.state.agents["a1"].state == "wrap_up" and acd.state.assignments == {}


def test_pending_callbacks_of_a_lost_node_are_dialled_by_the_survivor(acd):
    acd.request_callback("b-1", "+15550101", 20)  # requested on node-b
    assert acd.state.callbacks["cb:b-1"].node == "node-b"
    orphans = find_orphans(acd.state, LIVE_A, now=30)
    assert orphans.callbacks == ("cb:b-1",)
    recover(acd, orphans, 30, {}, node="node-a")
    assert acd.state.callbacks["cb:b-1"].node == "node-a"


def test_a_callback_being_dialled_by_the_lost_node_goes_back_to_pending(acd):
    acd.state.entries.clear()
    acd.enqueue("b-9", "cards", now=5, node="node-b")
    acd.request_callback("b-9", "+15550109", 6)
    acd.agent_state("a1", "available", 7)
    offered = acd.next_assignment(8)
    assert offered.kind == "callback"
    recover(acd, find_orphans(acd.state, LIVE_A, now=30), 30, {}, node="node-a")
    task = acd.state.callbacks["cb:b-9"]
    assert (task.state, task.node, task.not_before) == ("pending", "node-a", 30)
    assert acd.state.agents["a1"].state == "available" and acd.state.assignments == {}


def test_a_restarted_node_loses_the_calls_of_its_previous_process(acd):
    orphans = find_orphans(acd.state, {"node-a": 11.5, "node-b": 2.0}, now=50)
    assert orphans.entries == ("a-1",)  # a-2 was queued after node-a's restart at 11.5


def test_recovery_happens_once_a_second_run_on_fresh_state_finds_nothing(acd, agents_config, queues_config):
    raw = encode_state(acd.state)
    orphans = find_orphans(acd.state, LIVE_A, now=50)
    first = recover(acd, orphans, 50, {"b-1": "+15550101"}, node="node-a")
    assert len(first) == 2
    # A second survivor computed the same orphans before the first committed; it retries on the committed state.
    committed = Acd(agents_config, queues_config, decode_state(encode_state(acd.state)))
    assert recover(committed, orphans, 51, {"b-1": "+15550101"}, node="node-c") == []
    assert not find_orphans(committed.state, LIVE_A, now=51)
    assert committed.state.callbacks["cb:b-1"].node == "node-a"
    assert decode_state(raw).entries.keys() == {"a-1", "b-1", "a-2", "b-2"}  # the input encoding is untouched


def test_a_later_look_keeps_only_the_orphans_it_confirms():
    first = Orphans(entries=("b-1", "b-2"), assignments=("x#1",), callbacks=("cb:y",))
    later = Orphans(entries=("b-2", "b-3"), assignments=("x#1",))
    assert later.within(first) == Orphans(entries=("b-2",), assignments=("x#1",))
