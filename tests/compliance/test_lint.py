"""Compliance lint: shipped dialplans pass; each rule catches a broken dialplan at the right file:line."""

from __future__ import annotations

import argparse
from pathlib import Path

from voicebot.compliance.lint import (
    DEFAULT_POLICY_DIR,
    lint_dialplan,
    lint_dialplans,
    load_policies,
    load_policy,
    policies_for,
    register_lint,
    run_lint,
)
from voicebot.dialplan.loader import load_dialplan, validate_all

REPO = Path(__file__).resolve().parents[2]
BROKEN = """\
dialplan: finance
languages: [en-US, zh-CN]
start: menu
global:
  dtmf: {"5": products}
nodes:
  menu:
    say: {en: "Hello {{ slots.pin }}", zh: "您好"}
    listen:
      dtmf: {"1": disclaimer, "2": pin, "3": products}
  disclaimer:
    say: {en: "Investments are not deposits and carry risk.", zh: "理财非存款，投资须谨慎。"}
    goto: products
  pin:
    ask: {slot: pin, type: digits, length: 4, sensitive: true, say: "Key in your PIN"}
    goto: products
  products:
    say: {en: "Our funds offer guaranteed returns, totally risk free.", zh: "保本保息，稳赚不赔。"}
    hangup: true
"""


def _write(tmp_path: Path, text: str, name: str = "finance.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_shipped_dialplans_pass_every_policy() -> None:
    report = validate_all([REPO / "dialplans"])
    assert report.ok and {"finance", "healthcare"} <= {p.dialplan for p in report.plans.values()}
    assert lint_dialplans(report.plans, DEFAULT_POLICY_DIR) == []


def test_policies_load_and_select_by_dialplan_name() -> None:
    policies = load_policies()
    assert {p.policy for p in policies_for("finance", policies)} == {"finance", "common"}
    assert {p.policy for p in policies_for("airline", policies)} == {"common"}


def test_broken_dialplan_violates_every_rule_at_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, BROKEN)
    plan = load_dialplan(path)
    errors = lint_dialplan(plan, load_policy(REPO / "policies" / "finance.yaml"), path)
    by_message = {str(e) for e in errors}
    products_say = _line_of(BROKEN, "guaranteed returns")
    assert any(f"finance.yaml:{products_say}:" in m and "'guaranteed returns'" in m for m in by_message)
    assert any(f"finance.yaml:{products_say}:" in m and "'risk-free'" in m for m in by_message)  # "risk free"
    zh_line = _line_of(BROKEN, "保本保息")
    assert any(f":{zh_line}:" in m and "'保本保息'" in m for m in by_message)
    assert any(f":{zh_line}:" in m and "'稳赚'" in m for m in by_message)
    greeting = _line_of(BROKEN, "slots.pin")
    assert any(f":{greeting}:" in m and "sensitive slot 'pin'" in m for m in by_message)
    disclaimer = [e for e in errors if "disclaimer:" in e.message]
    assert len(disclaimer) == 1 and disclaimer[0].line == _line_of(BROKEN, "  products:")
    assert "menu -> products" in disclaimer[0].message or "(global) -> products" in disclaimer[0].message


def test_disclaimer_rule_follows_every_path(tmp_path: Path) -> None:
    """Only the direct key 3 and the global key 5 skip the disclaimer; once both go through it, the rule holds."""
    fixed = BROKEN.replace('"3": products', '"3": disclaimer').replace('"5": products', '"5": disclaimer')
    fixed = fixed.replace('"2": pin', '"2": disclaimer')
    path = _write(tmp_path, fixed)
    policy = load_policy(REPO / "policies" / "finance.yaml")
    assert not [e for e in lint_dialplan(load_dialplan(path), policy, path) if "disclaimer:" in e.message]
    # the PIN path alone still skips it
    via_pin = fixed.replace('"2": disclaimer', '"2": pin')
    path = _write(tmp_path, via_pin)
    errors = [e for e in lint_dialplan(load_dialplan(path), policy, path) if "disclaimer:" in e.message]
    assert len(errors) == 1 and "menu -> pin -> products" in errors[0].message


def test_shipped_finance_plan_fails_when_products_skip_the_disclaimer(tmp_path: Path) -> None:
    text = (REPO / "dialplans" / "finance.yaml").read_text(encoding="utf-8")
    broken = text.replace('"5": risk_disclaimer', '"5": products')
    assert broken != text
    path = _write(tmp_path, broken)
    report = validate_all([path])
    errors = lint_dialplans(report.plans)
    assert len(errors) == 1
    assert errors[0].line == _line_of(broken, "  products:") and "main_menu -> products" in errors[0].message


def test_healthcare_forbids_medical_advice(tmp_path: Path) -> None:
    text = (REPO / "dialplans" / "healthcare.yaml").read_text(encoding="utf-8")
    broken = text.replace("Connecting you to a nurse.", "You should take two aspirin. Connecting you to a nurse.")
    assert broken != text
    path = _write(tmp_path, broken, "healthcare.yaml")
    errors = lint_dialplans(validate_all([path]).plans)
    assert [e.line for e in errors] == [_line_of(broken, "two aspirin")]
    assert "'you should take'" in errors[0].message


def test_choice_option_words_are_not_prompts(tmp_path: Path) -> None:
    text = BROKEN.replace("    ask: {slot: pin, type: digits, length: 4, sensitive: true, say: \"Key in your PIN\"}",
                          "    ask: {slot: pin, type: choice, say: \"Pick\", options: {a: [risk free]}}")
    path = _write(tmp_path, text)
    errors = lint_dialplan(load_dialplan(path), load_policy(REPO / "policies" / "finance.yaml"), path)
    assert not [e for e in errors if e.line == _line_of(text, "options:")]


def test_bad_policy_file_is_reported_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("policy: x\napplies_to: [finance]\nforbidden_phrase: [a]\n")
    errors = lint_dialplans({}, tmp_path)
    assert len(errors) == 1 and errors[0].line == 3 and "forbidden_phrase" in errors[0].message


def test_validate_cli_hook(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    register_lint(parser)
    path = _write(tmp_path, BROKEN)
    plans = validate_all([path]).plans
    assert run_lint(parser.parse_args([]), plans)
    assert run_lint(parser.parse_args(["--no-compliance"]), plans) == []
    (tmp_path / "policies").mkdir()
    assert run_lint(parser.parse_args(["--policies", str(tmp_path / "policies")]), plans) == []
