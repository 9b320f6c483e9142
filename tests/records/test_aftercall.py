"""The after-call summary (issue 19): extractive, redacted, in both languages; knowledge and quality events used
when present and their absence handled."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.records.aftercall import needs_case, summarize
from voicebot.records.dispositions import load_dispositions
from voicebot.yamlsrc import ConfigErrors

REPO = Path(__file__).resolve().parents[2]

EVENTS = [
    ("call_started", {"dialplan": "finance"}),
    ("caller", {"text": "hi", "intent": "greet"}),
    ("caller", {"text": "I want to dispute a charge of 90 dollars on my card 4111 1111 1111 1111",
                "intent": "dispute"}),
    ("caller", {"kind": "dtmf", "text": "1234"}),
    ("slot", {"slot": "pin", "value": "****"}),
    ("slot", {"slot": "amount", "value": "90"}),
    ("node", {"node": "verified"}),
    ("answer", {"article": "finance-disputes", "version": "3"}),
    ("answer", {"article": "finance-disputes", "version": "3"}),
    ("quality", {"rule": "risk_disclosure_missing"}),
    ("queue_joined", {"queue": "banking"}),
    ("agent_answered", {"agent": "a7"}),
    ("disposition", {"code": "dispute_opened", "agent": "a7"}),
    ("call_ended", {"outcome": "agent"}),
]


def test_the_summary_picks_the_facts_and_never_a_sensitive_value() -> None:
    summary = summarize(EVENTS)
    assert summary.intent == "dispute" and summary.identity_verified and summary.reached_agent
    assert summary.agent == "a7" and summary.outcome == "agent" and summary.disposition == "dispute_opened"
    assert summary.slots == {"pin": "****", "amount": "90"}
    assert summary.articles == [{"id": "finance-disputes", "version": "3"}]
    assert summary.qa_flags == ["risk_disclosure_missing"]
    assert len(summary.key_lines) == 2 and "dispute a charge" in summary.key_lines[1]
    assert "4111" not in str(summary.as_dict()) and "1234" not in str(summary.as_dict())  # keys are never lines
    assert needs_case(summary)
    english, chinese = summary.text("en-US"), summary.text("zh-CN")
    assert "Identity verified: yes" in english and "Articles used: finance-disputes@3" in english
    assert "身份已核实：是" in chinese and "质检：risk_disclosure_missing" in chinese and "转人工：是 (a7)" in chinese


def test_without_knowledge_or_quality_events_the_summary_says_none() -> None:
    summary = summarize([("caller", {"text": "what is my balance", "intent": "balance"}),
                         ("call_ended", {"outcome": "completed"})], sensitive_slots=["amount"])
    assert summary.articles == [] and summary.qa_flags == [] and not summary.identity_verified
    assert "Articles used: none" in summary.text() and "QA flags: none" in summary.text()
    assert "引用知识：无" in summary.text("zh-CN")
    assert not needs_case(summary)  # the bot finished the job
    assert summarize([("slot", {"slot": "amount", "value": "12"})], sensitive_slots=["amount"]).slots == {
        "amount": "****"}
    asked_then_left = [("caller", {"text": "I need to dispute a charge", "intent": "dispute"}), ("caller_hangup", {}),
                       ("call_ended", {"outcome": "caller hung up"})]
    assert needs_case(summarize(asked_then_left))  # asked for something, left unresolved: follow it up
    assert not needs_case(summarize(asked_then_left[1:]))  # hung up in the greeting: nothing to follow up


def test_the_shipped_dispositions_cover_every_industry_in_both_languages() -> None:
    codes = load_dispositions(REPO / "sip_config" / "dispositions.yaml")
    for industry in ("finance", "healthcare", "airline", "ecommerce", "education", "demo"):
        offered = codes.for_industry(industry)
        assert len(offered) > len(codes.common) and all(d.en and d.zh for d in offered)
    assert codes.lookup("finance", "card_blocked") is not None and codes.lookup("airline", "card_blocked") is None


@pytest.mark.parametrize(("text", "where", "words"), [
    ("common:\n  - {code: ok, en-US: A, zh-CN: B}\nindustries:\n  finance:\n    - {code: Bad-Code, en-US: A, zh-CN: B}\n",
     ":5:", "code"),
    ("common:\n  - {code: ok, en-US: A}\n", ":2:", "zh-CN"),
    ("common:\n  - {code: ok, en-US: A, zh-CN: B, colour: red}\n", ":2:", "colour"),
])
def test_a_bad_disposition_file_is_refused_with_file_and_line(tmp_path: Path, text: str, where: str,
                                                               words: str) -> None:
    path = tmp_path / "dispositions.yaml"
    path.write_text(text)
    with pytest.raises(ConfigErrors) as caught:
        load_dispositions(path)
    assert f"{path}{where}" in str(caught.value) and words in str(caught.value), str(caught.value)


def test_voicebot_validate_reports_a_bad_disposition_file_with_its_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    codes = tmp_path / "dispositions.yaml"
    codes.write_text("common:\n  - {code: ok, en-US: Fine}\n")
    config = tmp_path / "voicebot.yaml"
    config.write_text(f"demo_backend: true\ncases: {{dispositions_file: {codes}}}\n")
    run = subprocess.run([sys.executable, "-m", "voicebot.cli", "validate", "--no-nlu", "--config", str(config)],
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1 and f"{codes}:2:5: common[0].zh-CN: field required" in run.stdout, run.stdout[-2000:]


def test_the_article_the_bot_answered_from_is_in_the_summary() -> None:
    summary = summarize([("knowledge_answer", {"article": "edu-refund-policy-en", "version": 3, "score": 0.6})])
    assert summary.articles == [{"id": "edu-refund-policy-en", "version": "3"}]
