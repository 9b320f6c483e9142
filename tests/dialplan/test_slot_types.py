"""The slot type registry: one module per type, found by itself — and a new type from another package is one file
that the validator, the interpreter (keys, speech, read-back, grammar, early endpoint) and the JSON Schema pick up."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dialplan.test_interpreter import Call, make, says
from voicebot.dialplan import actions as act
from voicebot.dialplan import slot_types
from voicebot.dialplan.early_endpoint import decide
from voicebot.dialplan.schema import AskSpec, export_json_schema
from voicebot.dialplan.slots import extract_slot
from voicebot.speech.grammar import Grammar, grammar_for_ask
from voicebot.yamlsrc import ConfigErrors

PACKAGE = Path(slot_types.__file__).parent

POSTCODE = '''
"""postcode: a six-digit postal code (100080), keyed or said digit by digit in English or Chinese."""

from voicebot.dialplan.slot_types import SlotType
from voicebot.nlu.numbers import read_digits
from voicebot.speech.grammar import digits_grammar


class Postcode(SlotType):
    name = "postcode"
    summary = "a six-digit postal code, keyed or said digit by digit"
    entities = ("postcode",)
    keyed_length = 6
    closed = True

    def validate(self, ask, value):
        code = str(value).replace(" ", "")
        return code if len(code) == 6 and code.isdigit() else None

    def from_text(self, ask, text):
        return self.validate(ask, read_digits(text))

    def read_back(self, ask, value, lang):
        return ("邮编 " if lang.startswith("zh") else "postcode ") + " ".join(value)

    def grammar(self, ask, known_values=()):
        return digits_grammar(6)

    def json_schema(self):
        return {**super().json_schema(), "properties": {"options": {"type": "null"}, "pattern": {"type": "null"}}}


SLOT_TYPE = Postcode()
'''


@pytest.fixture
def acme_plugin(tmp_path: Path) -> Iterator[Path]:
    """An installed package `acme_slots` whose one module declares the postcode type (entry point group
    voicebot.slot_types), as `pip install acme-slots` would leave it."""
    (tmp_path / "acme_slots").mkdir()
    (tmp_path / "acme_slots" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "acme_slots" / "postcode.py").write_text(POSTCODE, encoding="utf-8")
    info = tmp_path / "acme_slots-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-slots\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(
        f"[{slot_types.ENTRY_POINT_GROUP}]\npostcode = acme_slots.postcode\n", encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    slot_types.reload()
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "acme_slots" or m.startswith("acme_slots.")]:
            del sys.modules[name]
        importlib.invalidate_caches()
        slot_types.reload()


PLAN = """
dialplan: parcels
languages: [en-US, zh-CN]
start: where
nodes:
  where:
    ask: {slot: code, type: postcode, say: "Your postcode?", confirm: "You said {{ value }}, right?"}
    goto: bye
  bye:
    say: "Thanks."
    hangup: true
"""


def test_a_new_slot_type_is_one_module_of_another_package(acme_plugin: Path) -> None:
    assert "postcode" in slot_types.names()
    # validator: the type is known, close misspellings point to it, settings it does not take are refused
    plan = make(PLAN)
    with pytest.raises(ConfigErrors, match="unknown slot type 'postcod' — did you mean 'postcode'"):
        make(PLAN.replace("type: postcode", "type: postcod"))
    with pytest.raises(ConfigErrors, match="length is only for digits, pattern or text"):
        make(PLAN.replace("type: postcode,", "type: postcode, length: 6,"))
    # interpreter: it listens with the type's grammar and keyed length, and early-endpoints on a full code
    call = Call(plan)
    listen = [a for a in call.actions if isinstance(a, act.Listen)][-1]
    assert listen.grammar == Grammar("digits", min_digits=6, max_digits=6) and listen.max_digits == 6
    assert listen.early is not None and decide(listen.early, text="one zero zero zero eight zero",
                                               asr_confidence=0.9).complete
    # keyed fill, read back by the type
    assert says(call.keys("100080")) == ["You said postcode 1 0 0 0 8 0, right?"]
    call.say("yes")
    assert call.state.slots == {"code": "100080"}
    # spoken fill in Chinese (幺, 洞 from the shared digit table) and in English, read back in the caller's language
    zh = Call(plan, lang="zh-CN")
    assert says(zh.say("幺洞洞洞八洞")) == ["You said 邮编 1 0 0 0 8 0, right?"]
    en = Call(plan)
    en.say("it is one double oh, oh eight oh")
    assert en.state.candidate == "100080" and en.state.step == "confirm"
    # the type's own NLU entity fills it, a wrong length does not
    assert extract_slot(plan.nodes["where"].ask, text="x", entities={"postcode": "100 080"}) == "100080"
    assert extract_slot(plan.nodes["where"].ask, text="one two three") is None
    # JSON Schema: the type is offered to editors with its own rule
    schema = export_json_schema()["$defs"]["AskSpec"]
    assert "postcode" in schema["properties"]["type"]["enum"]
    rule = next(r for r in schema["allOf"] if r["if"]["properties"]["type"] == {"const": "postcode"})
    assert rule["then"]["properties"] == {"options": {"type": "null"}, "pattern": {"type": "null"}}


def test_without_the_plugin_the_type_is_unknown_everywhere() -> None:
    assert "postcode" not in slot_types.names()
    with pytest.raises(ConfigErrors, match="unknown slot type 'postcode'"):
        make(PLAN)
    assert "postcode" not in export_json_schema()["$defs"]["AskSpec"]["properties"]["type"]["enum"]


def test_each_module_of_the_package_is_one_type_named_as_its_file() -> None:
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_"))
    assert modules == list(slot_types.names())
    for name in modules:
        module = importlib.import_module(f"voicebot.dialplan.slot_types.{name}")
        assert module.SLOT_TYPE is slot_types.get(name) and module.SLOT_TYPE.name == name
        assert module.SLOT_TYPE.summary, f"{name}: a summary is what editors show"


def test_the_schema_rules_come_from_each_type() -> None:
    schema = export_json_schema()["$defs"]["AskSpec"]
    rules = {r["if"]["properties"]["type"]["const"]: r["then"] for r in schema["allOf"]}
    assert rules["choice"]["required"] == ["options"] and rules["pattern"]["required"] == ["pattern"]
    assert "length" not in rules["digits"].get("properties", {}) and "length" in rules["number"]["properties"]
    assert schema["properties"]["type"]["enum"] == list(slot_types.names())


def test_a_broken_plugin_is_a_clear_error() -> None:
    class Nameless(slot_types.SlotType):
        name = "has space"

    class Greedy(slot_types.SlotType):
        name = "greedy"
        settings = frozenset({"country"})

    with pytest.raises(TypeError, match="slot type name 'has space' must be an identifier"):
        slot_types.register(Nameless())
    with pytest.raises(TypeError, match=r"unknown ask settings \['country'\]"):
        slot_types.register(Greedy())
    with pytest.raises(TypeError, match="slot type 'digits' is defined twice"):
        slot_types.register(slot_types.get("digits"))
    assert "greedy" not in slot_types.names()


@pytest.mark.parametrize(("type_", "value", "lang", "spoken"), [
    ("yes_no", True, "en-US", "yes"),
    ("yes_no", False, "zh-CN", "不是"),
    ("digits", "4821", "en-US", "4 8 2 1"),
    ("money", {"amount": 12.5, "currency": "USD"}, "en-US", "12.5 USD"),
    ("date", "2024-05-03", "en-US", "2024-05-03"),
])
def test_read_back_is_the_types(type_: str, value: object, lang: str, spoken: str) -> None:
    ask = AskSpec(slot="s", type=type_, say="?")
    assert slot_types.get(type_).read_back(ask, value, lang) == spoken


def test_grammar_for_ask_asks_the_type() -> None:
    assert grammar_for_ask(AskSpec(slot="s", type="number", say="?")) is None
    assert grammar_for_ask(AskSpec(slot="s", type="digits", length=4, say="?")) == Grammar("digits", 4, 4)
    assert grammar_for_ask(object()) is None  # not an ask at all
