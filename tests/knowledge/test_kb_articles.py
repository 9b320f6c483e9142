"""Knowledge articles: front matter validated with file:line and the fix, ids unique, expiry and the compliance
policies checked — the errors `voicebot validate` prints."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from voicebot.dialplan.cli import main as dialplan_main
from voicebot.knowledge.articles import parse_article, speakable
from voicebot.knowledge.base import check_knowledge, load_knowledge
from voicebot.yamlsrc import ConfigErrors

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
TODAY = dt.date(2026, 12, 7)

GOOD = """---
id: {id}
title: Course refund policy
tags: [refunds, fees]
lang: {lang}
valid_from: 2026-01-01
valid_until: {until}
owner: registrar@example.com
version: 3
short_answer: {short}
---
# Refunds

- Up to 7 days before the start: full refund.
- Exam fees are [not refundable](https://example.com).
"""


def write(root: Path, collection: str, lang: str, name: str, **fields: str) -> Path:
    values = {"id": name, "lang": lang, "until": "2027-12-31",
              "short": "You get a full refund up to 7 days before the course starts.", **fields}
    path = root / collection / lang / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(GOOD.format(**values), encoding="utf-8")
    return path


def errors_of(root: Path) -> list[str]:
    report = check_knowledge(root, today=TODAY, policy_dir=POLICIES)
    return [str(e) for e in report.errors + report.expired]


def test_a_good_article_loads_with_its_body_speakable(tmp_path: Path) -> None:
    write(tmp_path, "education", "en", "edu-refunds")
    report = check_knowledge(tmp_path, today=TODAY, policy_dir=POLICIES)
    assert not report.errors and not report.expired
    article = report.articles[0]
    assert (article.id, article.collection, article.meta.version, article.meta.lang) == (
        "edu-refunds", "education", 3, "en")
    assert article.more() == "Refunds. Up to 7 days before the start: full refund. Exam fees are not refundable."


def test_unknown_field_names_file_line_and_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, "education", "en", "edu-refunds")
    path.write_text(path.read_text().replace("owner:", "ownr:"), encoding="utf-8")
    errors = errors_of(tmp_path)
    assert any(f"{path}:8" in e and "ownr" in e and "owner" in e for e in errors), errors


def test_missing_short_answer_is_an_error_with_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, "education", "en", "edu-refunds")
    path.write_text("\n".join(line for line in path.read_text().split("\n") if not line.startswith("short_answer")))
    errors = errors_of(tmp_path)
    assert errors == [f"{path}:10: the article has no short_answer — add short_answer: the spoken answer, a short "
                      "sentence first"]


def test_a_short_answer_not_written_for_the_ear_is_refused(tmp_path: Path) -> None:
    long_first = ("Refunds depend on the date you cancel relative to the start of the course and on whether exam "
                  "fees were paid to an exam board on your behalf. Ask us.")
    path = write(tmp_path, "education", "en", "edu-refunds", short=long_first)
    write(tmp_path, "education", "zh", "edu-refunds-zh", short="退费**政策**：开课前7天全额退款。")
    errors = errors_of(tmp_path)
    assert any(e.startswith(f"{path}:10: short_answer's first sentence has 28 words") for e in errors), errors
    assert any("edu-refunds-zh.md:10: short_answer contains Markdown" in e for e in errors), errors


def test_duplicate_ids_name_both_files(tmp_path: Path) -> None:
    first = write(tmp_path, "education", "en", "a", id="edu-refunds")
    second = write(tmp_path, "finance", "en", "b", id="edu-refunds")
    errors = errors_of(tmp_path)
    assert errors == [f"{second}:2: duplicate article id 'edu-refunds' (also in {first}:2) — give each article "
                      "its own id"]
    with pytest.raises(ConfigErrors):
        load_knowledge(tmp_path, today=TODAY, policy_dir=POLICIES, encoders={})


def test_an_expired_article_is_reported_but_not_fatal_for_serving(tmp_path: Path) -> None:
    path = write(tmp_path, "education", "en", "edu-refunds", until="2026-11-30")
    report = check_knowledge(tmp_path, today=TODAY, policy_dir=POLICIES)
    assert [str(e) for e in report.expired] == [
        f"{path}:7: article 'edu-refunds' expired on 2026-11-30 — review it: raise valid_until and version, or "
        "delete the file"]
    kb = load_knowledge(tmp_path, today=TODAY, policy_dir=POLICIES, encoders={})
    assert kb.search("refund", "en", day=TODAY) == []  # the date filter leaves it out
    assert [h.article.id for h in kb.search("refund", "en", day=dt.date(2026, 11, 1))] == ["edu-refunds"]


def test_compliance_policies_apply_to_the_collection(tmp_path: Path) -> None:
    path = write(tmp_path, "finance", "en", "fin-funds",
                 short="Our funds give guaranteed returns of 5 percent. Ask an adviser.")
    write(tmp_path, "education", "en", "edu-ok", short="Our funds give guaranteed returns. Ask us.")  # not finance
    body = tmp_path / "healthcare" / "zh" / "hosp.md"
    write(tmp_path, "healthcare", "zh", "hosp", short="请按时复诊。")
    body.write_text(body.read_text() + "如果头痛，你应该服用止痛药。\n", encoding="utf-8")
    errors = errors_of(tmp_path)
    assert any(e.startswith(f"{path}:10: short_answer: [finance] forbidden phrase 'guaranteed returns'")
               for e in errors), errors
    assert any(e.startswith(f"{body}:16: body: [healthcare] forbidden phrase '你应该服用'") for e in errors), errors
    assert not any("edu-ok" in e for e in errors)


def test_front_matter_problems_are_located(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match=r"a\.md:1:1: an article starts with front matter"):
        parse_article("# no front matter\n", "a.md", "x")
    with pytest.raises(ConfigErrors, match=r"a\.md:1:1: the front matter is not closed"):
        parse_article("---\nid: x\n", "a.md", "x")
    path = write(tmp_path, "education", "zh", "wrong-folder")  # lang: zh is right for the folder
    path.write_text(path.read_text().replace("lang: zh", "lang: en"), encoding="utf-8")
    assert any(f"{path}:5: lang 'en' in the 'zh' folder" in e for e in errors_of(tmp_path))


def test_speakable_drops_markdown() -> None:
    assert speakable("## Fees\n* one: **10** yuan\n1. two [link](http://x)") == "Fees. one: 10 yuan. two link."


def test_validate_reports_articles_and_answer_tags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "kb", "education", "en", "edu-refunds")
    write(tmp_path / "kb", "education", "en", "old", until="2026-01-31")
    plan = tmp_path / "plan.yaml"
    plan.write_text("dialplan: kbtest\nknowledge: education\nstart: a\nnodes:\n  a:\n    answer:\n"
                    "      tags: [refunds, refunts]\n      then: b\n  b:\n    hangup: true\n", encoding="utf-8")
    status = dialplan_main(["validate", "--no-nlu", "--knowledge-dir", str(tmp_path / "kb"), str(plan)])
    out = capsys.readouterr().out
    assert status == 1
    assert "old.md:7: article 'old' expired on 2026-01-31" in out
    assert f"{plan}:7:23: node 'a' (answer.tags): no en article in 'education' has the tag 'refunts' — did you " \
           "mean 'refunds'?" in out, out
    assert f"knowledge: 2 article(s) in {tmp_path / 'kb'}" in out
