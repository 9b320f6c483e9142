"""Retrieval over the shipped articles with the real encoders (USE multilingual, MiniLM): ranking in English and
Mandarin, and the collection / tag / language / validity filters."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from voicebot.dialplan.actions import Answer
from voicebot.knowledge.base import KnowledgeBase, load_knowledge

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 12, 7)


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return load_knowledge(REPO / "knowledge", today=TODAY)


@pytest.mark.parametrize(("question", "lang", "collection", "expected"), [
    ("somebody nicked my purse with my bank card inside", "en", "finance", "fin-lost-card-en"),
    ("how much do you charge to wire money", "en", "finance", "fin-transfer-fees-en"),
    ("the strawberries came mouldy", "en", "ecommerce", "shop-returns-perishable-en"),
    ("when are relatives allowed on the ward", "en", "healthcare", "hosp-visiting-hours-en"),
    ("我的箱子在转盘上没等到", "zh", "airline", "air-delayed-baggage-zh"),
    ("课上了一半不想上了钱能退吗", "zh", "education", "edu-refund-policy-zh"),
    ("信用卡这个月最少还多少", "zh", "finance", "fin-card-repayment-zh"),
])
def test_the_right_article_ranks_first(kb: KnowledgeBase, question: str, lang: str, collection: str,
                                       expected: str) -> None:
    hits = kb.search(question, lang, collection=collection, day=TODAY, k=3)
    assert hits[0].article.id == expected, [(h.article.id, h.score) for h in hits]
    assert hits[0].score > hits[1].score
    assert all(h.article.collection == collection and h.article.meta.lang == lang for h in hits)
    assert 0 < hits[0].score <= 1 and hits[0].vector > 0 and hits[0].lexical > 0


def test_filters_tags_language_and_dates(kb: KnowledgeBase) -> None:
    question = "my bag didn't come off the plane"
    assert kb.search(question, "en", collection="airline", day=TODAY)[0].article.id == "air-delayed-baggage-en"
    tagged = kb.search(question, "en", collection="airline", tags=["compensation"], day=TODAY, k=10)
    assert tagged and all("compensation" in h.article.meta.tags for h in tagged)
    assert {h.article.meta.lang for h in kb.search(question, "zh-CN", day=TODAY, k=10)} == {"zh"}
    assert kb.search(question, "en", day=dt.date(2025, 6, 1)) == []  # before valid_from
    assert kb.search(question, "en", day=dt.date(2028, 1, 1)) == []  # after valid_until
    assert kb.search(question, "fr", day=TODAY) == []
    assert kb.search(question, "en", tags=["no_such_tag"], day=TODAY) == []


def test_answer_turns_an_action_into_hits_with_versions(kb: KnowledgeBase) -> None:
    result = kb.answer(Answer("", "zh-CN", "education", ("refunds",), 2), day=TODAY)
    assert result.query == "refunds"  # nothing said: the tags are the question
    assert len(result.hits) == 2 and {h.article for h in result.hits} == {"edu-refund-policy-zh",
                                                                           "edu-exam-fees-zh"}
    said = kb.answer(Answer("开课前退课能退多少钱", "zh-CN", "education", ("refunds",)), day=TODAY)
    best = said.hits[0]
    assert (best.article, best.version) == ("edu-refund-policy-zh", 3)
    assert best.short_answer.startswith("开课前7天以上可全额退款") and "考试费不退" in best.more
