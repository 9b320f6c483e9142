"""Slot value parsing by type, the template sandbox, and SSML-lite."""

from __future__ import annotations

import pytest

from voicebot.dialplan.prompts import SsmlError, parse_ssml_lite, pick_language
from voicebot.dialplan.schema import AskSpec
from voicebot.dialplan.slots import extract_slot
from voicebot.dialplan.templates import TemplateError, check_template, condition_holds, evaluate, render


def ask(type_: str, **kw: object) -> AskSpec:
    return AskSpec(slot="s", type=type_, say="?", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "kw", "expected"),
    [
        (ask("digits", length=4), {"text": "it is one two 3 4"}, "1234"),
        (ask("digits", length=4), {"text": "幺二三四"}, "1234"),
        (ask("digits", length=4), {"keys": "12345"}, None),
        (ask("digits", length=4), {"keys": "1234#"}, "1234"),
        (ask("number"), {"text": "about 1,250 people"}, 1250),
        (ask("number"), {"text": "none"}, None),
        (ask("money"), {"text": "$12.50 please"}, 12.5),
        (ask("money"), {"keys": "12*5"}, 12.5),
        (ask("money"), {"entities": {"money": {"amount": 5, "currency": "USD"}}}, {"amount": 5, "currency": "USD"}),
        (ask("date"), {"keys": "20240503"}, "2024-05-03"),
        (ask("date"), {"entities": {"date": "2024-06-01"}, "text": "june first"}, "2024-06-01"),
        (ask("time"), {"text": "at 2:30 pm"}, "14:30"),
        (ask("time"), {"keys": "0915"}, "09:15"),
        (ask("yes_no"), {"text": "Yes, that's right"}, True),
        (ask("yes_no"), {"text": "不是"}, False),
        (ask("yes_no"), {"text": "maybe"}, None),
        (ask("yes_no"), {"intent": "deny", "text": "nah mate"}, False),
        (ask("yes_no"), {"keys": "2"}, False),
        (ask("choice", options={"red": ["crimson"], "blue": {"say": ["navy", "蓝色"], "dtmf": "2"}}),
         {"text": "the navy one"}, "blue"),
        (ask("choice", options={"red": ["crimson"], "blue": {"say": ["navy", "蓝色"], "dtmf": "2"}}),
         {"text": "要蓝色的"}, "blue"),
        (ask("choice", options={"red": ["crimson"], "blue": {"dtmf": "2"}}), {"keys": "2"}, "blue"),
        (ask("choice", options={"red": ["crimson"]}), {"text": "reddish"}, None),
        (ask("pattern", pattern="[A-Z]{2}[0-9]{3}"), {"text": "flight ba 123"}, None),
        (ask("pattern", pattern="[A-Z]{2}[0-9]{3}"), {"text": "ba 123"}, "BA123"),
        (ask("pattern", pattern="[A-Z]{2}[0-9]{3}"), {"text": "it's UA456 today"}, "UA456"),
        (ask("text"), {"text": "  my free words "}, "my free words"),
        (ask("text"), {"keys": "12"}, None),
        (ask("digits", entity="acct"), {"entities": {"acct": "99 88"}, "text": "x"}, "9988"),
    ],
)
def test_extract_slot_by_type(spec: AskSpec, kw: dict, expected: object) -> None:
    assert extract_slot(spec, **kw) == expected


def test_ask_spec_rejects_inconsistent_options() -> None:
    with pytest.raises(ValueError, match="a choice slot needs options"):
        ask("choice")
    with pytest.raises(ValueError, match="length is only for digits, pattern or text"):
        ask("number", length=3)
    with pytest.raises(ValueError, match="unknown slot type 'digit'"):
        ask("digit")


def test_template_sandbox_refuses_python_internals() -> None:
    with pytest.raises(TemplateError, match="refused by the template sandbox"):
        render("{{ ''.__class__ }}", {})
    with pytest.raises(TemplateError, match="not allowed in templates"):
        check_template("{{ ''.__class__ }}")
    with pytest.raises(TemplateError, match="refused by the template sandbox"):
        evaluate("{{ vars.get.__self__ }}", {"vars": {}})
    with pytest.raises(TemplateError, match="unknown name 'range'"):
        check_template("{% for i in range(10**9) %}{% endfor %}")


def test_template_values_keep_types_and_tolerate_missing_data() -> None:
    ctx = {"caller": {"vip": True}, "vars": {}, "slots": {"n": 3}}
    assert evaluate("{{ 10 if caller.vip else 0 }}", ctx) == 10
    assert evaluate({"a": ["{{ slots.n * 2 }}", "n={{ slots.n }}"]}, ctx) == {"a": [6, "n=3"]}
    assert render("Hi {{ caller.profile.name }}!", ctx) == "Hi !"
    assert condition_holds("slots.n > 2 and not vars.done", ctx) is True


def test_ssml_lite() -> None:
    assert parse_ssml_lite('a <break time="250ms"/>b<break time="2s" />') == ("a", 250, "b", 2000)
    with pytest.raises(SsmlError, match="unsupported markup '<emphasis>'"):
        parse_ssml_lite("<emphasis>x</emphasis>")
    with pytest.raises(SsmlError, match="out of range"):
        parse_ssml_lite('<break time="20s"/>')
    with pytest.raises(SsmlError, match="stray"):
        parse_ssml_lite("1 < 2")


def test_pick_language_falls_back_by_primary_subtag_then_default() -> None:
    texts = {"en": "Hello", "zh-CN": "你好"}
    assert pick_language(texts, "zh-TW", "en-US") == "你好"
    assert pick_language(texts, "fr-FR", "en-US") == "Hello"


@pytest.mark.parametrize(
    ("said", "answer"),
    [
        ("Yes, please cancel it.", True), ("that's right", True), ("go ahead", True),
        ("Sure, go ahead and block it", True),
        ("好的，帮我取消", True), ("对，取消吧", True), ("that's not right", False), ("no thanks", False),
        ("not now", False), ("不是这个", False), ("US please", None), ("I don't know", None), ("我不知道", None),
        ("no, that's right", None), ("good morning", None),
    ],
)
def test_yes_no_reads_what_people_say(said: str, answer: bool | None) -> None:
    ask = AskSpec(slot="ok", type="yes_no", say="Shall I?")
    assert extract_slot(ask, text=said) is answer
