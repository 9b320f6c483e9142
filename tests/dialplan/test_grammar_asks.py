"""Asks carry their grammar to the recogniser, and a value heard against it fills the slot (pure, no audio)."""

from __future__ import annotations

import pytest

from tests.dialplan.test_interpreter import MENU, Call, make
from voicebot.dialplan import actions as act
from voicebot.dialplan.schema import AskSpec
from voicebot.dialplan.slots import GRAMMAR_ENTITY, extract_slot
from voicebot.speech.grammar import Grammar, grammar_for_ask, spoken_forms

PLAN = MENU.replace("sales: sales,", "sales: ask_it,") + """
  ask_it:
    ask: {slot: account, type: digits, length: 6, say: "Account?"}
    goto: bye
"""


def listens(actions: list[act.Action]) -> list[act.Listen]:
    return [a for a in actions if isinstance(a, act.Listen)]


def test_a_digits_ask_listens_with_its_grammar_and_a_free_listen_without() -> None:
    call = Call(make(PLAN))
    assert listens(call.actions)[-1].grammar is None  # the menu: intents, free recognition
    actions = call.say("sales", "sales")
    assert listens(actions)[-1].grammar == Grammar("digits", min_digits=6, max_digits=6)


def test_the_grammar_value_fills_the_slot_before_nlu_entities_and_text() -> None:
    call = Call(make(PLAN))
    call.say("sales", "sales")
    # The free text reads the digits as a quantity and the NLU as a number (leading zero lost): the value wins.
    call.say("zero sixteen thousand four hundred thirty eight", entities={GRAMMAR_ENTITY: "016438", "number": 16438})
    assert call.state.slots == {"account": "016438"}


@pytest.mark.parametrize(("spec", "value", "expected"), [
    (AskSpec(slot="a", type="digits", length=6, say="?"), "1643885", None),  # wrong length: nomatch
    (AskSpec(slot="a", type="yes_no", say="?"), "no", False),
    (AskSpec(slot="a", type="choice", options={"savings": ["savings"], "checking": ["current"]}, say="?"),
     "checking", "checking"),
])
def test_grammar_values_are_validated_like_any_slot_value(spec: AskSpec, value: str, expected: object) -> None:
    assert extract_slot(spec, text="", entities={GRAMMAR_ENTITY: value}) == expected


def test_grammar_for_each_ask_type() -> None:
    assert grammar_for_ask(AskSpec(slot="a", type="digits", min_length=4, max_length=8, say="?")) == \
        Grammar("digits", min_digits=4, max_digits=8)
    yes_no = grammar_for_ask(AskSpec(slot="a", type="yes_no", say="?"))
    assert yes_no is not None and dict(yes_no.options)["yes"][0] == "yes" and "不是" in dict(yes_no.options)["no"]
    choice = grammar_for_ask(AskSpec(slot="a", type="choice", say="?",
                                     options={"card_lost": {"say": ["lost card", "挂失"], "dtmf": "1"}}))
    assert choice is not None and choice.options == (("card_lost", ("card lost", "lost card", "挂失")),)
    pattern = grammar_for_ask(AskSpec(slot="a", type="pattern", pattern="[A-Z]{2}[0-9]{3,4}", say="?"),
                              known_values=["CA981", "nope"])
    assert pattern is not None and pattern.options == (("CA981", spoken_forms("CA981")),)
    assert "C A 9 8 1" in spoken_forms("CA981") and "CA九八一" in spoken_forms("CA981")
    assert grammar_for_ask(AskSpec(slot="a", type="text", say="?")) is None


KNOWN_PLAN = MENU.replace("sales: sales,", "sales: ask_account,") + """
  ask_account:
    ask:
      slot: account
      type: digits
      length: 6
      say: "Account?"
      candidates: {items: "{{ caller.profile.accounts }}", value: number}
    goto: bye
"""


def test_a_digits_ask_with_the_callers_own_records_listens_for_them() -> None:
    profile = {"accounts": [{"number": "016438"}, {"number": "90-21-05"}, {"number": "1234567"}, {"name": "x"}]}
    call = Call(make(KNOWN_PLAN), caller="+1555", profile=profile)
    actions = call.say("sales", "sales")
    # the two six-digit numbers (dashes dropped); a seven-digit one cannot be the answer
    assert listens(actions)[-1].grammar == Grammar("digits", min_digits=6, max_digits=6, known=("016438", "902105"))
    call = Call(make(KNOWN_PLAN), caller="+1555", profile={})  # none found: the plain digits grammar
    assert listens(call.say("sales", "sales"))[-1].grammar == Grammar("digits", min_digits=6, max_digits=6)


PATTERN_PLAN = MENU.replace("sales: sales,", "sales: ask_flight,") + """
  ask_flight:
    ask:
      slot: flight
      type: pattern
      pattern: "[A-Z]{2}[0-9]{3,4}"
      say: "Which flight?"
      candidates: {items: "{{ caller.profile.bookings }}", value: flight}
    goto: bye
"""


def test_a_pattern_ask_with_the_callers_own_records_listens_for_their_codes() -> None:
    # flight numbers found by the lookup webhook: the recogniser scores "C A 9 8 1" / "CA九八一" before a free decode
    profile = {"bookings": [{"flight": "CA981"}, {"flight": "MU5101"}, {"flight": "not a flight"}]}
    call = Call(make(PATTERN_PLAN), caller="+1555", profile=profile)
    grammar = listens(call.say("sales", "sales"))[-1].grammar
    assert grammar is not None and grammar.kind == "pattern" and grammar.closed
    assert grammar.options == (("CA981", spoken_forms("CA981")), ("MU5101", spoken_forms("MU5101")))
    call = Call(make(PATTERN_PLAN), caller="+1555", profile={})  # none found: the pattern alone, free decode
    grammar = listens(call.say("sales", "sales"))[-1].grammar
    assert grammar is not None and not grammar.closed and grammar.options == ()


def test_known_values_must_be_answers_of_the_grammar() -> None:
    with pytest.raises(ValueError, match="known value '12345'"):
        Grammar("digits", min_digits=6, max_digits=6, known=("12345",))
    with pytest.raises(ValueError, match="known value"):
        Grammar("yes_no", options=(("yes", ("yes",)),), known=("123456",))
