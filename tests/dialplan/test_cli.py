"""Authoring CLI: validate, simulate (scripted stdin), test (with coverage) and graph produce real output."""

from __future__ import annotations

import io
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from voicebot.dialplan.cli import main
from voicebot.dialplan.loader import load_dialplan
from voicebot.dialplan.simulate import SimulationInputError, parse_line, simulate
from voicebot.dialplan import events as ev

ROOT = Path(__file__).resolve().parents[2]
DIALPLANS = ROOT / "dialplans"
BROKEN = Path(__file__).with_name("broken")


@dataclass(frozen=True)
class _Entity:
    type: str
    value: object
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class _Result:
    text: str
    intent: str | None
    confidence: float
    entities: tuple[_Entity, ...]
    lang: str
    ranking: tuple[tuple[str, float], ...] = ()


class KeywordNlu:
    """Test stand-in for voicebot.nlu's NluEngine: an intent per keyword, numbers as 'amount' entities."""

    KEYWORDS = {"balance": "check_balance", "pay": "pay_bill", "agent": "agent", "yes": "affirm", "bye": "goodbye"}

    def parse(self, text: str, lang: str) -> _Result:
        words = text.lower().split()
        intent = next((self.KEYWORDS[w] for w in words if w in self.KEYWORDS), None)
        entities = tuple(_Entity("amount", int(w), w, text.find(w), text.find(w) + len(w)) for w in words if w.isdigit())
        return _Result(text, intent, 0.9 if intent else 0.0, entities, lang)

    def intents(self, lang: str) -> set[str]:
        return set(self.KEYWORDS.values())


def test_validate_demo_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--no-nlu", str(DIALPLANS)]) == 0
    out = capsys.readouterr().out
    assert f"ok: {DIALPLANS / 'demo.yaml'} (demo, 17 nodes)" in out
    assert "0 error(s)" in out


def test_validate_broken_exits_1_with_file_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--no-nlu", str(BROKEN / "dangling_goto.yaml"), str(BROKEN / "unreachable.yaml")]) == 1
    out = capsys.readouterr().out
    assert (f"error: {BROKEN / 'dangling_goto.yaml'}:8:17: node 'menu' (listen.nomatch.then): goto target 'salse' "
            "is not a node — did you mean 'sales'?") in out
    assert f"warning: {BROKEN / 'unreachable.yaml'}:5:3: node 'orphan': unreachable" in out
    assert "2 dialplan(s), 1 error(s), 1 warning(s)" not in out  # the broken file is not a loaded plan
    assert "1 dialplan(s), 1 error(s), 1 warning(s)" in out


def test_simulate_script_through_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    script = '!ok {"name": "Ann"}\nhello there\n/check_balance\n#123456\n!state\n#1\n#1234\n' \
             '!ok {"verified": true, "name": "Ann", "balance": 7}\n#2\n'
    monkeypatch.setattr(sys, "stdin", io.StringIO(script))
    assert main(["simulate", "--no-nlu", str(DIALPLANS / "demo.yaml")]) == 0
    out = capsys.readouterr().out
    assert "bot: Welcome to Acme Telecom, Ann. You can say balance, pay a bill, or agent." in out
    assert "bot: Sorry, I didn't get that." in out                   # plain text without NLU: nomatch
    assert "(node identify · ask · lang en-US · slots {})" in out
    assert '"step": "confirm"' in out                                # !state prints the state JSON
    assert '> SetRecording {"paused": true}' in out
    assert "bot: Thank you Ann. Your balance is 7 dollars." in out
    assert out.rstrip().endswith("call ended: completed")


def test_simulate_with_an_nlu_engine_and_bad_input() -> None:
    plan = load_dialplan(DIALPLANS / "demo.yaml")
    out = io.StringIO()
    lines = io.StringIO('!ok {}\nI want to pay 40 now\n#12x\n!bogus\n#123456\n!quit\n#1\n')
    state = simulate(plan, lines, out, nlu=KeywordNlu())
    text = out.getvalue()
    assert "bot: Please say or key in your six digit account number." in text
    assert "! '#12x': DTMF is #digits, e.g. #123" in text and "! unknown command !bogus" in text
    assert state.vars["after"] == "payment" and state.entities == {"amount": 40}
    assert state.step == "confirm" and not state.ended  # !quit stopped before "#1"


def test_parse_line_forms() -> None:
    assert parse_line("#12*") == ev.Keys("12*")
    assert parse_line('/pay_bill {"amount": 3}') == ev.Heard('/pay_bill {"amount": 3}', "pay_bill", {"amount": 3})
    assert parse_line("!queue 2 90") == ev.QueueUpdate(2, 90.0)
    assert parse_line("!error timeout") == ev.WebhookResult(False, None, "timeout")
    assert parse_line("  ") is None
    with pytest.raises(SimulationInputError, match="JSON object"):
        parse_line("/x [1]")


def test_conversation_tests_pass_with_full_node_coverage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "--no-nlu", "--min-coverage", "0.9", str(DIALPLANS / "demo.tests.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS demo.tests.yaml") == 7 and "FAIL" not in out
    assert "coverage demo: nodes 17/17 (100%)" in out
    assert out.rstrip().endswith("all tests passed")


def test_failing_conversation_test_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(DIALPLANS / "demo.yaml", tmp_path / "demo.yaml")
    (tmp_path / "demo.tests.yaml").write_text(
        "tests:\n  - name: wrong greeting\n    steps:\n      - webhook: {ok: true, data: {}}\n"
        "        bot: Good morning\n      - dtmf: '9'\n", encoding="utf-8")
    assert main(["test", "--no-nlu", "--min-coverage", "0.5", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL demo.tests.yaml: wrong greeting" in out
    assert (f"{tmp_path / 'demo.tests.yaml'}:4: step 1: expected the bot to say 'Good morning'; it said: "
            "Welcome to Acme Telecom. You can say balance, pay a bill, or agent.") in out
    assert "nodes 1/17 (6%)" in out and "below --min-coverage 50%" in out


def test_conversation_test_file_errors_are_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(DIALPLANS / "demo.yaml", tmp_path / "demo.yaml")
    (tmp_path / "demo.tests.yaml").write_text(
        "tests:\n  - name: x\n    steps:\n      - dtmf: '1'\n        noinput: true\n", encoding="utf-8")
    assert main(["test", str(tmp_path / "demo.tests.yaml")]) == 1
    assert (f"error: {tmp_path / 'demo.tests.yaml'}:4:9: tests[0].steps[0]: one event per step, got dtmf, noinput"
            in capsys.readouterr().out)


@pytest.mark.parametrize("flag", [[], ["--no-graphviz"]])
def test_graph_writes_svg(tmp_path: Path, flag: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "demo.svg"
    assert main(["graph", str(DIALPLANS / "demo.yaml"), "-o", str(output), *flag]) == 0
    svg = output.read_text(encoding="utf-8")
    renderer = "python" if flag or shutil.which("dot") is None else "graphviz"
    assert f"wrote {output} ({renderer})" in capsys.readouterr().out
    assert svg.lstrip().startswith(("<?xml", "<svg", "<!DOCTYPE")) and "</svg>" in svg
    for node in ("greet", "check_pin", "to_agent", "callback"):
        assert node in svg


def test_graph_dot_source_has_every_edge(tmp_path: Path) -> None:
    output = tmp_path / "demo.dot"
    assert main(["graph", str(DIALPLANS / "demo.yaml"), "-o", str(output)]) == 0
    dot = output.read_text(encoding="utf-8")
    assert '"greet" -> "verify" [label="check_balance"];' in dot
    assert '"(global)" -> "to_agent" [label="#0", style=dashed];' in dot
