"""Every shipped conversation suite (`dialplans/*.tests.yaml`) passes with the real NLU at >= 90 % node coverage.

This is the README's `voicebot test dialplans/ --min-coverage 0.9`, one dialplan per test so a failure names its
suite. Caller sentences (`caller:` steps) are classified by the trained NLU of the dialplan's domain, so a
regression in the NLU models, a dialplan or its suite fails here. A step may also give the intent itself
(`intent:`); those readings must be what the real NLU hears, or the suite would test a dialogue no caller gets.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voicebot.dialplan import events as ev
from voicebot.dialplan.cli import DEFAULT_NLU, main
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.loader import load_dialplan
from voicebot.dialplan.testing import load_tests
from voicebot.nlu.base import load_nlu

DIALPLANS = Path(__file__).resolve().parents[2] / "dialplans"
SUITES = sorted(DIALPLANS.glob("*.tests.yaml"))
MIN_COVERAGE = 0.9
NOT_UNDERSTOOD = {None, "out_of_scope"}  # both end in the listen's nomatch


def test_every_dialplan_has_a_suite() -> None:
    plans = {p.name.removesuffix(".yaml") for p in DIALPLANS.glob("*.yaml") if not p.name.endswith(".tests.yaml")}
    assert {s.name.removesuffix(".tests.yaml") for s in SUITES} == plans


@pytest.mark.timeout(600)
@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.name.removesuffix(".tests.yaml"))
def test_suite_passes_with_the_real_nlu(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = load_dialplan(suite.with_name(suite.name.replace(".tests.yaml", ".yaml")))
    assert plan.nlu and (DEFAULT_NLU / plan.nlu).is_dir(), f"{plan.dialplan}: no trained NLU domain {plan.nlu!r}"
    cases = len(load_tests(suite)[0].tests)

    status = main(["test", "--min-coverage", str(MIN_COVERAGE), str(suite)])
    out, err = capsys.readouterr()

    assert "unavailable" not in err, err  # the CLI falls back to no NLU with only a warning
    failures = [line for line in out.splitlines() if line.startswith(("FAIL", "     ", "error"))]
    assert status == 0 and not failures, "\n".join(failures)
    assert out.count(f"PASS {suite.name}: ") == cases
    nodes = re.search(rf"coverage {plan.dialplan}: nodes (\d+)/(\d+)", out)
    assert nodes, out
    assert int(nodes[1]) / int(nodes[2]) >= MIN_COVERAGE


def _given_intents_the_nlu_disagrees_with(suite: Path) -> list[str]:
    """Replay every case with the real NLU; list the caller steps whose given intent the NLU does not hear."""
    plan = load_dialplan(suite.with_name(suite.name.replace(".tests.yaml", ".yaml")))
    nlu = load_nlu(DEFAULT_NLU / plan.nlu)
    wrong = []
    for case in load_tests(suite)[0].tests:
        context = case.context
        interpreter = Interpreter(plan)
        state, _ = interpreter.start(ev.CallContext(context.caller, context.dnis, context.lang, "test", case.name,
                                                    dict(context.profile)))
        for step in case.steps:
            event = step.event()
            if event is None:
                continue
            if isinstance(event, ev.Heard):
                heard = nlu.parse(event.text, (step.lang or state.lang).split("-")[0])
                if event.intent is None and not event.entities:
                    event = ev.Heard(event.text, heard.intent, {e.type: e.value for e in heard.entities},
                                     heard.confidence, event.lang)
                elif event.intent != heard.intent and not {event.intent, heard.intent} <= NOT_UNDERSTOOD:
                    wrong.append(f"{case.name}: {event.text!r} is given as {event.intent}, the NLU hears "
                                 f"{heard.intent} ({heard.confidence:.2f})")
            state, _ = interpreter.handle(state, event)
    return wrong


@pytest.mark.timeout(600)
@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.name.removesuffix(".tests.yaml"))
def test_given_intents_are_what_the_real_nlu_hears(suite: Path) -> None:
    assert _given_intents_the_nlu_disagrees_with(suite) == []
