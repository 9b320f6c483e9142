"""Semantic endpointing: the pure decision, the settings merge and what the interpreter puts on each Listen."""

from __future__ import annotations

import textwrap

import pytest

from voicebot.dialplan import actions as act
from voicebot.dialplan import events as ev
from voicebot.dialplan.early_endpoint import EarlyEndpoint, decide, resolve
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.schema import AskSpec, Dialplan, EarlyEndpointSpec
from voicebot.yamlsrc import ConfigErrors, load_yaml_text, validate


def ask(**fields: object) -> AskSpec:
    return AskSpec(slot="x", say="?", **fields)  # type: ignore[arg-type]


MENU = EarlyEndpoint(intents=frozenset({"check_balance", "agent"}), min_confidence=0.7)


# ----------------------------------------------------------------------------------------- decide


def test_in_scope_intent_above_threshold_completes() -> None:
    verdict = decide(MENU, text="check my balance", asr_confidence=0.9, intent="check_balance",
                     intent_confidence=0.85)
    assert verdict.complete and verdict.reason == "intent check_balance"


@pytest.mark.parametrize("intent, confidence, reason", [
    ("check_balance", 0.55, "intent check_balance below 0.70 (0.55)"),
    ("pay_bill", 0.95, "no in-scope intent"),
    (None, 0.0, "no in-scope intent"),
])
def test_weak_or_out_of_scope_intent_waits(intent: str | None, confidence: float, reason: str) -> None:
    verdict = decide(MENU, text="I would like to", asr_confidence=0.9, intent=intent, intent_confidence=confidence)
    assert not verdict.complete and verdict.reason == reason


def test_off_empty_or_unsure_recognition_never_ends_early() -> None:
    assert decide(None, text="yes", asr_confidence=1.0).reason == "early endpointing off"
    assert not decide(MENU, text="  ", asr_confidence=0.9).complete
    unsure = decide(MENU, text="check my balance", asr_confidence=0.3, intent="check_balance", intent_confidence=0.99)
    assert not unsure.complete and unsure.reason.startswith("recognition unsure")


def test_digits_complete_only_at_the_required_length() -> None:
    rule = EarlyEndpoint(slot=ask(type="digits", length=6))
    assert decide(rule, text="1 2 3 4 5 6", asr_confidence=0.7).complete
    assert decide(rule, text="one two three four five six", asr_confidence=0.7).complete
    short = decide(rule, text="1 2 3 4", asr_confidence=0.7)
    assert not short.complete and short.reason == "no digits value yet"


def test_digits_without_fixed_length_wait_unless_the_maximum_is_reached() -> None:
    open_ended = EarlyEndpoint(slot=ask(type="digits", min_length=3))
    verdict = decide(open_ended, text="1 2 3 4", asr_confidence=0.8)
    assert not verdict.complete and verdict.reason == "more digits may follow"
    bounded = EarlyEndpoint(slot=ask(type="digits", min_length=3, max_length=4))
    assert decide(bounded, text="1 2 3 4", asr_confidence=0.8).complete
    assert not decide(bounded, text="1 2 3", asr_confidence=0.8).complete


@pytest.mark.parametrize("text, complete", [("yes", True), ("No, that's wrong.", True), ("well I", False)])
def test_yes_no(text: str, complete: bool) -> None:
    rule = EarlyEndpoint(slot=ask(type="yes_no"))
    assert decide(rule, text=text, asr_confidence=0.8).complete is complete


def test_yes_no_from_the_nlu_intent_and_choice_options() -> None:
    assert decide(EarlyEndpoint(slot=ask(type="yes_no")), text="that is it", asr_confidence=0.8,
                  intent="affirm", intent_confidence=0.4).complete
    choice = EarlyEndpoint(slot=ask(type="choice", options={"red": ["red"], "blue": ["navy"]}))
    assert decide(choice, text="navy please", asr_confidence=0.8).complete
    assert not decide(choice, text="green", asr_confidence=0.8).complete


def test_date_time_and_pattern_need_a_full_parse() -> None:
    date = EarlyEndpoint(slot=ask(type="date"))
    assert decide(date, text="on 2026-03-14", asr_confidence=0.8).complete
    assert decide(date, text="next", asr_confidence=0.8, entities={"date": "2026-03-14"}).complete
    assert not decide(date, text="on the fourteenth", asr_confidence=0.8).complete
    time = EarlyEndpoint(slot=ask(type="time"))
    assert decide(time, text="at 3 pm", asr_confidence=0.8).complete
    assert not decide(time, text="at 3", asr_confidence=0.8).complete
    flight = EarlyEndpoint(slot=ask(type="pattern", pattern="[A-Z]{2}[0-9]{3,4}"))
    assert decide(flight, text="UA 1234", asr_confidence=0.8).complete
    assert not decide(flight, text="UA", asr_confidence=0.8).complete


@pytest.mark.parametrize("slot_type", ["number", "money", "text"])
def test_open_ended_slots_never_end_early(slot_type: str) -> None:
    verdict = decide(EarlyEndpoint(slot=ask(type=slot_type)), text="twenty", asr_confidence=0.9)
    assert not verdict.complete and verdict.reason == f"{slot_type} answers are open-ended"


def test_a_global_intent_completes_an_ask() -> None:
    rule = EarlyEndpoint(intents=frozenset({"agent"}), slot=ask(type="money"))
    assert decide(rule, text="an agent please", asr_confidence=0.9, intent="agent", intent_confidence=0.9).complete


def test_rule_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="silence_ms"):
        EarlyEndpoint(silence_ms=0)
    with pytest.raises(ValueError, match="min_confidence"):
        EarlyEndpoint(min_confidence=1.5)


# ----------------------------------------------------------------------------------------- resolve


def test_resolve_merges_only_the_fields_an_override_names() -> None:
    base = EarlyEndpointSpec(silence_ms=250, min_confidence=0.8)
    assert resolve(base, None) == base
    assert resolve(base, False) is None
    merged = resolve(base, EarlyEndpointSpec.model_validate({"silence_ms": 400}))
    assert merged is not None and (merged.silence_ms, merged.min_confidence) == (400, 0.8)
    off = EarlyEndpointSpec(enabled=False)
    assert resolve(off, None) is None
    assert resolve(off, True) == EarlyEndpointSpec(enabled=True)


# ----------------------------------------------------------------------------------------- interpreter


PLAN = """
dialplan: early
start: menu
early_endpoint: {silence_ms: 250, min_confidence: 0.6}
global:
  intents: {agent: bye}
nodes:
  menu:
    say: "Balance or bill?"
    listen:
      intents: {check_balance: account, pay_bill: account}
      min_confidence: 0.75
  account:
    ask: {slot: account, type: digits, length: 6, say: "Your account?", confirm: true,
          early_endpoint: {silence_ms: 350}}
    goto: amount
  amount:
    ask: {slot: amount, type: money, say: "How much?", early_endpoint: false}
    goto: bye
  bye:
    say: "Bye."
    hangup: true
"""


def make(text: str) -> Dialplan:
    data, lines = load_yaml_text(textwrap.dedent(text), "t.yaml")
    return validate(Dialplan, data, lines, "t.yaml")


def listens(actions: list[act.Action]) -> list[act.Listen]:
    return [a for a in actions if isinstance(a, act.Listen)]


def test_interpreter_puts_the_completion_rule_on_each_listen() -> None:
    interpreter = Interpreter(make(PLAN))
    state, actions = interpreter.start(ev.CallContext())
    (menu,) = listens(actions)
    assert menu.early == EarlyEndpoint(silence_ms=250, min_confidence=0.75,
                                       intents=frozenset({"check_balance", "pay_bill", "agent"}))
    state, actions = interpreter.handle(state, ev.Heard("balance", "check_balance", confidence=0.9))
    (account,) = listens(actions)
    assert account.early is not None and account.early.silence_ms == 350
    assert account.early.slot is not None and account.early.slot.type == "digits"
    assert account.early.intents == frozenset({"agent"})
    state, actions = interpreter.handle(state, ev.Heard("1 2 3 4 5 6"))
    (confirm,) = listens(actions)
    assert confirm.early is not None and confirm.early.slot is not None and confirm.early.slot.type == "yes_no"
    state, actions = interpreter.handle(state, ev.Heard("yes"))
    (amount,) = listens(actions)
    assert amount.early is None


def test_early_silence_never_exceeds_end_silence_and_keys_only_listens_have_none() -> None:
    plan = make(PLAN.replace("type: money, say:", "type: money, input: dtmf, say:")
                .replace("early_endpoint: {silence_ms: 350}", "end_silence_ms: 200"))
    interpreter = Interpreter(plan)
    state, _ = interpreter.start(ev.CallContext())
    state, actions = interpreter.handle(state, ev.Heard("balance", "check_balance", confidence=0.9))
    assert listens(actions)[0].early.silence_ms == 200  # type: ignore[union-attr]
    state, _ = interpreter.handle(state, ev.Heard("1 2 3 4 5 6"))
    state, actions = interpreter.handle(state, ev.Heard("yes"))
    assert listens(actions)[0].mode == "dtmf" and listens(actions)[0].early is None


def test_bad_early_endpoint_settings_are_refused_with_their_location() -> None:
    with pytest.raises(ConfigErrors, match="silence_ms"):
        make(PLAN.replace("silence_ms: 250", "silence_ms: 20"))
    with pytest.raises(ConfigErrors, match="silense_ms"):
        make(PLAN.replace("silence_ms: 250", "silense_ms: 250"))
