"""`voicebot nlu train|eval` through the module's own main()."""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import pytest

from voicebot.nlu.rasa_data import load_nlu_data
from voicebot.nlu.cli import main, register

DEMO = Path(__file__).resolve().parents[2] / "nlu_models" / "demo"


@pytest.fixture()
def domain(tmp_path: Path) -> Path:
    target = tmp_path / "demo"
    shutil.copytree(DEMO, target, ignore=shutil.ignore_patterns("trained"))
    return target


def test_train_then_up_to_date(domain: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nlu", "train", str(domain)]) == 0
    out, err = capsys.readouterr()
    intents = len(load_nlu_data(domain / "en" / "nlu.yml").intents) - 1  # out_of_scope is not an intent
    assert re.search(rf"^en: trained — \d+ examples, {intents} intents", out, re.M), out
    assert re.search(rf"^zh: trained — \d+ examples, {intents} intents", out, re.M), out
    assert "100%" in err  # the progress bar ran to completion
    assert list((domain / "en" / "trained").glob("intent-*.pkl"))
    assert main(["nlu", "train", str(domain)]) == 0
    assert "en: up to date" in capsys.readouterr().out


def test_eval_prints_accuracy_f1_and_confusions(domain: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nlu", "eval", str(domain), "--folds", "3", "--lang", "en"]) == 0
    out = capsys.readouterr().out
    match = re.search(r"en: \d+ examples, \d+ intents, 3-fold — accuracy (\d\.\d+), macro-F1 (\d\.\d+)", out)
    assert match, out
    assert 0.5 < float(match[1]) <= 1.0 and 0.5 < float(match[2]) <= 1.0
    assert "top confusions" in out or "no confusions" in out
    assert re.search(r"^    \w+ -> \w+: \d+$", out, re.M) or "no confusions" in out


def test_bad_data_exits_nonzero_with_location(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "nlu.yml").write_text("nlu:\n- intent: a\n  examples: |\n    - [x](\n", encoding="utf-8")
    assert main(["nlu", "train", str(tmp_path)]) == 1
    assert "nlu.yml:4" in capsys.readouterr().err
    assert main(["nlu", "eval", str(tmp_path / "missing")]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_register_adds_nlu_command() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["nlu", "eval", "x", "--folds", "4"])
    assert (args.command, args.nlu_command, args.folds, args.domain_dir) == ("nlu", "eval", 4, Path("x"))
