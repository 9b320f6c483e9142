"""Adding labelled examples to nlu.yml keeps the file's comments and layout and Rasa's reading of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.nlu.cli import main
from voicebot.nlu.edit import add_examples
from voicebot.nlu.rasa_data import parse_nlu_text

SOURCE = """# Finance, English.  A comment that must survive.
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hello
    - hi
- intent: check_balance   # the one people ask most
  examples: |
    - what's my balance
- synonym: savings
  examples: |
    - savings account
"""


def test_examples_join_their_intent_and_a_new_intent_gets_a_block() -> None:
    result = add_examples(SOURCE, "check_balance", ["How much money do I have", "what's my  BALANCE"])
    assert result.added == ["How much money do I have"] and result.skipped == ["what's my BALANCE"]
    assert "# Finance, English.  A comment that must survive." in result.text
    assert "- intent: check_balance   # the one people ask most" in result.text
    data = parse_nlu_text(result.text)
    assert {e.text for e in data.examples if e.intent == "check_balance"} == {
        "what's my balance", "How much money do I have"}
    result = add_examples(result.text, "card_fees", ["what does the card cost per year"])
    data = parse_nlu_text(result.text)
    assert [e.text for e in data.examples if e.intent == "card_fees"] == ["what does the card cost per year"]
    assert data.synonyms["savings account"] == "savings"  # the synonym block after it is intact


@pytest.mark.parametrize(("intent", "example", "message"), [
    ("bad name", "hi", "intent name"), ("greet", "  ", "empty"), ("greet", "my [card](thing)", "annotations"),
])
def test_bad_input_is_refused_with_the_reason(intent: str, example: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        add_examples(SOURCE, intent, [example])


def test_cli_writes_the_file_and_a_rerun_adds_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "nlu.yml").write_text(SOURCE, encoding="utf-8")
    assert main(["nlu", "add", str(tmp_path), "good evening", "--lang", "en", "--intent", "greet"]) == 0
    assert "1 example(s) added" in capsys.readouterr().out
    assert "    - good evening" in (tmp_path / "en" / "nlu.yml").read_text(encoding="utf-8")
    assert main(["nlu", "add", str(tmp_path), "Good evening", "--lang", "en", "--intent", "greet"]) == 0
    assert "0 example(s) added to greet, 1 already there" in capsys.readouterr().out
