"""Rasa nlu.yml reader: every annotation form, sections, and located errors."""

from __future__ import annotations

import pytest

from voicebot.nlu.rasa_data import Annotation, load_nlu_data, parse_example, parse_nlu_text
from voicebot.yamlsrc import YamlSourceError

FULL = '''version: "3.1"
nlu:
- intent: check_balance
  examples: |
    - what's my [savings](account) balance
    - balance of [current account]{"entity": "account", "value": "checking"} please
    - move money from [savings]{"entity": "account", "role": "from"} to [checking]{"entity": "account", "role": "to", "group": "1"}
    - legacy [cheque](account:checking) format
- intent: greet
  examples:
    - hello
    - text: hi there
      metadata: {sentiment: neutral}
- synonym: savings
  examples: |
    - saving account
    - Savings Acct
- regex: account_number
  examples: |
    - \\d{10,12}
- lookup: bank
  examples: |
    - Chase
    - Wells Fargo
'''


def test_reads_every_section_and_annotation_form() -> None:
    data = parse_nlu_text(FULL, "nlu.yml")
    texts = [e.text for e in data.examples]
    assert texts[0] == "what's my savings balance"
    assert data.examples[0].entities == (Annotation("account", "savings", "savings", 10, 17),)
    assert data.examples[1].entities[0].value == "checking"
    first = data.examples[1].entities[0]
    assert data.examples[1].text[first.start : first.end] == "current account"
    roles = [(a.role, a.group, a.value) for a in data.examples[2].entities]
    assert roles == [("from", None, "savings"), ("to", "1", "checking")]
    assert data.examples[3].entities[0].value == "checking" and data.examples[3].text == "legacy cheque format"
    assert texts[4:] == ["hello", "hi there"]
    assert data.intents == {"check_balance", "greet"}
    assert data.synonyms == {"saving account": "savings", "savings acct": "savings"}
    assert data.regexes == {"account_number": ["\\d{10,12}"]}
    assert data.lookups == {"bank": ["Chase", "Wells Fargo"]}


def test_example_lines_point_into_the_block() -> None:
    data = parse_nlu_text(FULL, "nlu.yml")
    assert [e.line for e in data.examples[:4]] == [5, 6, 7, 8]


@pytest.mark.parametrize(
    ("text", "plain", "spans"),
    [
        ("no entities here", "no entities here", []),
        ("[a](x) and [b c](y)", "a and b c", [(0, 1, "x"), (6, 9, "y")]),
        ('pay [$5]{"entity": "money", "value": "5"} now', "pay $5 now", [(4, 6, "money")]),
        ("arrays [1] stay", "arrays [1] stay", []),
    ],
)
def test_parse_example_spans(text: str, plain: str, spans: list[tuple[int, int, str]]) -> None:
    result, annotations = parse_example(text)
    assert result == plain
    assert [(a.start, a.end, a.type) for a in annotations] == spans
    assert all(result[a.start : a.end] == a.text for a in annotations)


def _error(text: str) -> YamlSourceError:
    with pytest.raises(YamlSourceError) as info:
        parse_nlu_text(text, "bad.yml")
    return info.value


@pytest.mark.parametrize(
    ("body", "line", "needle"),
    [
        ('nlu:\n- intent: a\n  examples: |\n    - ok\n    - bad [x]{"entity": oops}\n', 5, "not valid JSON"),
        ("nlu:\n- intent: a\n  examples: |\n    - ok\n    - bad [x](\n", 5, "unclosed"),
        ("nlu:\n- intent: a\n  examples: |\n    - ok\n    - [x](not valid!)\n", 5, "invalid entity type"),
        ('nlu:\n- intent: a\n  examples: |\n    - [x]{"value": "v"}\n', 4, '"entity" key'),
        ("nlu:\n- intent: a\n  examples: |\n    - ok\n    no dash here\n", 5, "must start with '- '"),
        ("nlu:\n- intent: a\n  examples: |\n    - ok\n- intent: empty\n  examples: \"\"\n", 5, "has no examples"),
        ("nlu:\n- intent: a\n  examples: |\n    - ok\n- intent: b\n", 5, "has no 'examples'"),
        ("nlu:\n- intent: a\n  example: |\n    - ok\n", 3, "unknown key 'example'"),
        ("nlu:\n- regex: r\n  examples: |\n    - ([a-z\n", 4, "invalid pattern"),
        ("nlu:\n- intent: a\n  synonym: b\n  examples: |\n    - ok\n", 2, "exactly one"),
        ("version: \"2.0\"\nnlu: []\n", 1, "unsupported version"),
        ("nlu:\n- intent: a\n  examples: |\n    - ok\n  examples: |\n    - again\n", 5, "duplicate key"),
        ("intents: [a]\nnlux: []\n", 2, "unknown top-level key 'nlux'"),
        ("nlu:\n- synonym: x\n  examples: |\n    - y\n", 1, "no intents"),
        ("nlu:\n- synonym: x\n  examples: |\n    - y\n- synonym: z\n  examples: |\n    - y\n", 7, "both"),
    ],
)
def test_errors_name_file_and_line(body: str, line: int, needle: str) -> None:
    error = _error(body)
    assert error.path == "bad.yml"
    assert error.line == line, str(error)
    assert needle in str(error)


def test_load_from_file_reports_its_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "nlu.yml"
    path.write_text("nlu:\n- intent: a\n  examples: |\n    - [x]{bad}\n", encoding="utf-8")
    with pytest.raises(YamlSourceError) as info:
        load_nlu_data(path)
    assert str(info.value).startswith(f"{path}:4")


def test_unquoted_yes_and_no_intents_are_text_as_rasa_reads_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Rasa reads YAML 1.2: `- intent: yes` names the intent 'yes' (PyYAML's 1.1 rules would make it True)."""
    body = (
        'version: "3.1"\nnlu:\n- intent: yes\n  examples: |\n    - yes please\n'
        "- intent: no\n  examples: |\n    - no thanks\n- intent: on\n  examples: |\n    - turn it on\n"
    )
    path = tmp_path / "nlu.yml"
    path.write_text(body, encoding="utf-8")
    for data in (parse_nlu_text(body), load_nlu_data(path)):
        assert data.intents == {"yes", "no", "on"}
        assert {example.text: example.intent for example in data.examples}["yes please"] == "yes"
