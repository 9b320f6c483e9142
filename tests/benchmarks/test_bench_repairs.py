"""bench/repairs.py's parts: scripted turns become the session's events, goals are read off what the call did, and
every scenario names a dialplan, a known kind and a goal the runner understands."""

from __future__ import annotations

from pathlib import Path

import yaml

from bench.repairs import DATA, Replay, goal_met, turn_event
from voicebot.dialplan import actions as act
from voicebot.dialplan import events as ev
from voicebot.dialplan.state import State

ROOT = Path(__file__).resolve().parents[2]
KINDS = {"short_answer_garbled", "yes_restating_the_action", "code_letters_dropped", "language_switch", "out_of_scope"}


class Parser:
    def parse(self, text: str, lang: str) -> object:
        raise AssertionError("keys and failures are no speech")


def test_scripted_turns_become_session_events() -> None:
    assert turn_event("#1234", "en", Parser()) == ev.Keys("1234")
    assert turn_event("!noinput", "en", Parser()) == ev.NoInput()
    assert turn_event("!nomatch zh", "zh", Parser()) == ev.NoMatch(lang="zh")
    assert turn_event("!nomatch", "zh", Parser()) == ev.NoMatch(lang=None)


def test_goals_are_read_off_what_the_call_did() -> None:
    state = State(dialplan="d", node="n", step="listen", lang="en-US", vars={"reason": "out_of_scope"})
    block = act.Webhook(name="finance.block_card", url=None, method="POST", args={"card_last4": "8841"})
    run = Replay(state, [block, act.Enqueue(queue="banking", skills=("banking", "lang:zh-CN"))])
    assert goal_met({"webhook": "finance.block_card"}, run)
    assert goal_met({"webhook": "finance.block_card", "args": {"card_last4": "8841"}}, run)
    assert not goal_met({"webhook": "finance.block_card", "args": {"card_last4": "8842"}}, run)
    assert goal_met({"enqueue_skill": "lang:zh-CN"}, run) and not goal_met({"enqueue_skill": "lang:en-US"}, run)
    assert goal_met({"enqueue_reason": "out_of_scope"}, run)
    assert not goal_met({"enqueue_reason": "out_of_scope"}, Replay(state, [block]))


def test_every_scenario_names_a_dialplan_a_kind_and_a_goal() -> None:
    scenarios = yaml.safe_load(DATA.read_text(encoding="utf-8"))["scenarios"]
    assert {s["kind"] for s in scenarios} == KINDS
    assert {s["dialplan"] for s in scenarios} == {"finance", "ecommerce", "healthcare", "education", "airline"}
    for scenario in scenarios:
        assert (ROOT / "dialplans" / f"{scenario['dialplan']}.yaml").is_file()
        assert scenario["turns"] and scenario["speaks"] in ("en", "zh")
        assert set(scenario["goal"]) <= {"webhook", "args", "enqueue_skill", "enqueue_reason"}, scenario["name"]
