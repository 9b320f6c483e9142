"""Loader: broken dialplans get exact file:line messages with the node and the fix; cross-reference checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voicebot.dialplan.loader import load_dialplan, validate_all
from voicebot.dialplan import slot_types
from voicebot.dialplan.schema import export_json_schema
from voicebot.yamlsrc import ConfigErrors, YamlSourceError

ROOT = Path(__file__).resolve().parents[2]
BROKEN = Path(__file__).with_name("broken")
DEMO = ROOT / "dialplans" / "demo.yaml"

EXPECTED = {
    "bad_condition.yaml": "6:10: node 'a' (branch[0].if): template syntax error: unexpected 'end of print "
                          "statement' — templates look like {{ slots.account }}; see docs/dialplan.md",
    "bad_language.yaml": "6:24: node 'a' (say.fr): language 'fr' is not in languages (en-US) — add it to "
                         "languages: or fix the key",
    "bad_ssml.yaml": "5:5: node 'a' (say): unsupported markup '<prosody rate=\"slow\">'; only "
                     "<break time=\"500ms\"/> is allowed — pauses are written <break time=\"500ms\"/>",
    "bad_yaml.yaml": "7:1: YAML syntax error: found unexpected end of stream (while scanning a quoted scalar on "
                     "line 5) — a quote or bracket is not closed",
    "branch_without_else.yaml": "5:5: nodes.a.branch: branch must end with exactly one {else: node} — add "
                                "{else: node} as the last case so every call goes somewhere",
    "busy_loop.yaml": "4:3: node 'a': loop with no listen, ask or webhook: a -> b -> a — a call would spin "
                      "forever; add a listen/ask to the loop or break it",
    "dangling_goto.yaml": "8:17: node 'menu' (listen.nomatch.then): goto target 'salse' is not a node — did you "
                          "mean 'sales'?",
    "duplicate_node.yaml": "5:3: duplicate key 'a' — it is already defined on line 4; keep only one",
    "language_offer_not_a_menu.yaml": "5:11: language_offer.nodes[0]: node 'welcome' has no listen: the offer is "
                                      "made at a menu's failed turn — list the menu nodes (with listen:) where "
                                      "callers may be in the wrong language",
    "out_of_scope_not_a_menu.yaml": "4:11: out_of_scope.nodes[0]: node 'welcome' has no listen: the out-of-scope "
                                    "path answers a menu's request — list the menu nodes (with listen:) whose "
                                    "requests may be out of scope",
    "memory_bomb.yaml": "5:5: node 'a' (say): template too large: repeated value exceeds the template size limit "
                        "(20000 characters) — templates look like {{ slots.account }}; see docs/dialplan.md",
    "no_exit.yaml": "4:3: nodes.a: this node has no way forward — add one of listen, answer, branch, goto, "
                    "transfer, enqueue, call, return or hangup",
    "sandbox.yaml": "5:5: node 'a' (say): access to '__mro__' is not allowed in templates (sandbox) — templates "
                    "look like {{ slots.account }}; see docs/dialplan.md",
    "template_error.yaml": "5:5: node 'a' (say): template syntax error: unexpected '}' — templates look like "
                           "{{ slots.account }}; see docs/dialplan.md",
    "two_exits.yaml": "4:3: nodes.a: a node has one exit, this one has 2: goto, hangup — split it into two nodes "
                      "joined by goto",
    "unknown_key.yaml": "6:5: nodes.a: unknown field 'lisen' (did you mean 'listen'?)",
    "unknown_slot_ref.yaml": "6:5: node 'a' (say): template reads slot 'acount' that no ask fills — slots "
                             "filled by asks: account",
    "unknown_slot_type.yaml": "5:20: nodes.a.ask.type: unknown slot type 'digit' — did you mean 'digits'?",
}


def errors_of(path: Path) -> list[str]:
    try:
        load_dialplan(path)
    except ConfigErrors as exc:
        return [str(e) for e in exc.errors]
    except YamlSourceError as exc:
        return [str(exc)]
    return []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_dialplan_gets_exact_located_message(name: str) -> None:
    path = BROKEN / name
    assert errors_of(path) == [f"{path}:{EXPECTED[name]}"]


def test_corpus_is_fully_covered() -> None:
    assert {p.name for p in BROKEN.glob("*.yaml")} == set(EXPECTED) | {"unreachable.yaml"}


def test_unreachable_node_is_a_warning_not_an_error() -> None:
    warnings: list[YamlSourceError] = []
    plan = load_dialplan(BROKEN / "unreachable.yaml", warnings=warnings)
    assert set(plan.nodes) == {"a", "orphan"}
    assert [str(w) for w in warnings] == [
        f"{BROKEN / 'unreachable.yaml'}:5:3: node 'orphan': unreachable: no transition leads here — "
        "goto orphan from somewhere, or remove it"]


def test_demo_dialplan_loads_cleanly() -> None:
    warnings: list[YamlSourceError] = []
    plan = load_dialplan(DEMO, warnings=warnings)
    assert warnings == [] and plan.start == "greet" and plan.languages == ["en-US", "zh-CN"]


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_several_errors_are_reported_together_in_line_order(tmp_path: Path) -> None:
    path = write(tmp_path, "dialplan: x\nstart: nowhere\nfallback: gone\nnodes:\n  a: {goto: b}\n  b: {hangup: true}\n")
    assert errors_of(path) == [
        f"{path}:2:1: start: goto target 'nowhere' is not a node — nodes are: a, b",
        f"{path}:3:1: fallback: goto target 'gone' is not a node — nodes are: a, b",
    ]


def test_dtmf_keys_and_pattern_regex_are_checked(tmp_path: Path) -> None:
    path = write(tmp_path, 'dialplan: x\nstart: a\nnodes:\n  a:\n    listen: {dtmf: {"1x": a}}\n')
    assert errors_of(path) == [f"{path}:5:21: nodes.a.listen.dtmf['1x']: '1x' is not a DTMF key sequence — "
                               "use digits 0-9, * and # (quote them: \"1\")"]
    path = write(tmp_path, "dialplan: x\nstart: a\nnodes:\n  a:\n    ask: {slot: s, type: pattern, pattern: '[A-', "
                           "say: q}\n    hangup: true\n")
    (message,) = errors_of(path)
    assert message.startswith(f"{path}:5:35: nodes.a.ask.pattern: invalid regular expression:")


def test_global_handler_targets_and_template_names_are_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "dialplan: x\nstart: a\nglobal:\n  intents: {agent: humn}\nnodes:\n"
                           "  a: {say: '{{ slot.x }}', hangup: true}\n  human: {hangup: true}\n")
    assert errors_of(path) == [
        f"{path}:4:13: global.intents.agent: goto target 'humn' is not a node — did you mean 'human'?",
        f"{path}:6:7: node 'a' (say): unknown name 'slot'; templates can read call, caller, item, lang, minutes, "
        "position, result, slots, value, vars — templates look like {{ slots.account }}; see docs/dialplan.md",
    ]


def test_values_under_set_are_data_not_targets(tmp_path: Path) -> None:
    path = write(tmp_path, "dialplan: x\nstart: a\nnodes:\n  a: {set: {goto: elsewhere, then: x}, hangup: true}\n")
    assert errors_of(path) == []


def test_every_slot_type_is_accepted() -> None:
    assert slot_types.names() == ("choice", "date", "digits", "money", "number", "pattern", "text", "time", "yes_no")


# ---------------------------------------------------------------------------------------- directories

NLU_PLAN = """dialplan: n
nlu: shop
languages: [en-US, zh-CN]
start: a
global:
  intents: {agent: b}
nodes:
  a:
    listen: {intents: {buy: b, refund: b}}
  b: {hangup: true}
"""


def test_validate_all_checks_intents_are_trained_per_language(tmp_path: Path) -> None:
    plan_dir = tmp_path / "dialplans"
    plan_dir.mkdir()
    path = write(plan_dir, NLU_PLAN)
    write(plan_dir, "tests: []\n", "p.tests.yaml")  # conversation tests are skipped
    (tmp_path / "nlu" / "shop").mkdir(parents=True)
    trained = {"en": {"buy", "refund", "agent"}, "zh": {"buy", "refunds"}}
    calls: list[tuple[str, str]] = []

    def intents(domain: str, lang: str) -> set[str]:
        calls.append((domain, lang))
        return trained[lang]

    report = validate_all(plan_dir, tmp_path / "nlu", intents)
    assert calls == [("shop", "en"), ("shop", "zh")]
    assert [str(e) for e in report.errors] == [
        f"{path}:6:13: global.intents.agent: intent 'agent' is not trained in NLU 'shop' (zh) — add it to "
        "shop/zh/nlu.yml",
        f"{path}:9:32: nodes.a.listen.intents.refund: intent 'refund' is not trained in NLU 'shop' (zh) — did you "
        "mean 'refunds'?",
    ]
    assert not report.ok and list(report.plans) == [str(path)]


def test_validate_all_reports_missing_nlu_domain_and_no_files(tmp_path: Path) -> None:
    path = write(tmp_path, NLU_PLAN)
    report = validate_all([path], tmp_path / "nlu", None)
    assert [str(e) for e in report.errors] == [
        f"{path}:2:1: nlu: domain 'shop' not found in {tmp_path / 'nlu'} — create {tmp_path / 'nlu'}/shop/<lang>/"
        "nlu.yml or fix the name"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no dialplan files found" in str(validate_all(empty).errors[0])


def test_validate_all_collects_errors_from_every_file() -> None:
    report = validate_all(BROKEN)
    assert {Path(e.path).name for e in report.errors} == set(EXPECTED)
    assert len(report.warnings) == 1


# ------------------------------------------------------------------------------------------ JSON Schema


def test_exported_json_schema_matches_the_published_file(tmp_path: Path) -> None:
    schema = export_json_schema(tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text(encoding="utf-8")) == schema
    assert set(schema["required"]) == {"dialplan", "start", "nodes"}
    node = schema["$defs"]["Node"]["properties"]
    assert {"say", "ask", "listen", "branch", "webhook", "transfer", "enqueue", "call", "return", "hangup"} <= set(node)
    assert schema["$defs"]["Node"]["additionalProperties"] is False
    published = ROOT / "docs" / "dialplan.schema.json"
    assert json.loads(published.read_text(encoding="utf-8")) == schema, "run export_json_schema('docs/dialplan.schema.json')"


def test_language_offer_names_nodes_and_languages_of_the_dialplan(tmp_path: Path) -> None:
    source = (BROKEN / "language_offer_not_a_menu.yaml").read_text(encoding="utf-8")
    path = tmp_path / "offer.yaml"
    path.write_text(source.replace("[welcome]", "[menu, mnu]").replace('"2": zh-CN', '"2": fr-FR'), encoding="utf-8")
    assert errors_of(path) == [
        f"{path}:5:17: language_offer.nodes[1]: 'mnu' is not a node — did you mean 'menu'?",
        f"{path}:7:22: language_offer.dtmf['2']: language 'fr-FR' is not in languages (en-US, zh-CN) — use one "
        "listed there",
    ]


def test_out_of_scope_names_a_person_node_and_a_threshold_within_0_1(tmp_path: Path) -> None:
    source = (BROKEN / "out_of_scope_not_a_menu.yaml").read_text(encoding="utf-8").replace("[welcome]", "[menu]")
    path = tmp_path / "scope.yaml"
    path.write_text(source.replace("person: human", "person: humn"), encoding="utf-8")
    assert errors_of(path) == [f"{path}:6:3: out_of_scope.person: goto target 'humn' is not a node — did you mean "
                               "'human'?"]
    path.write_text(source.replace("person: human", "person: human\n  min_confidence: 1.5"), encoding="utf-8")
    assert errors_of(path) == [f"{path}:7:3: out_of_scope.min_confidence: 1.5 is above the maximum 1"]
    path.write_text(source, encoding="utf-8")
    assert errors_of(path) == []
