"""The review's knowledge-base misses: the caller's question before each answer the knowledge base could not give,
on SQLite and on PostgreSQL (the same query, both dialects)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psycopg

from voicebot.records.analytics import AnalyticsFilter
from voicebot.records.postgres import Shipper
from voicebot.records.review import knowledge_misses
from voicebot.records.store import SqliteRecordStore


def write_calls(store: SqliteRecordStore) -> None:
    t = 1_000_000.0
    store.start_call("c1", caller="+15550100", dialplan="ecommerce", started_at=t)
    store.append("c1", "node", {"node": "returns_help"}, t=t + 1)
    store.append("c1", "caller", {"text": "can I return a gift card", "lang": "en-US"}, t=t + 2)
    store.append("c1", "knowledge_nomatch", {"best": "returns-digital", "score": 0.21, "min_score": 0.3}, t=t + 3)
    store.append("c1", "caller", {"text": "agent", "intent": "agent"}, t=t + 4)
    store.append("c1", "queue_joined", {"queue": "orders"}, t=t + 5)
    store.end_call("c1", outcome="queued", ended_at=t + 6)
    store.start_call("c2", caller="+15550101", dialplan="ecommerce", started_at=t + 10)
    store.append("c2", "caller", {"text": "how long does a refund take", "lang": "en-US"}, t=t + 11)
    store.append("c2", "knowledge_answer", {"article": "refund-timing", "version": 1, "score": 0.7}, t=t + 12)
    store.append("c2", "caller", {"text": "礼品卡可以退吗", "lang": "zh-CN"}, t=t + 13)
    store.append("c2", "knowledge_nomatch", {"best": "", "score": 0.0, "min_score": 0.3}, t=t + 14)
    store.append("c2", "caller", {"text": "[sensitive]"}, t=t + 15)
    store.append("c2", "knowledge_nomatch", {"best": "", "score": 0.0, "min_score": 0.3}, t=t + 16)
    store.end_call("c2", outcome="completed", ended_at=t + 17)


def check(misses: list) -> None:  # type: ignore[type-arg]
    assert [(m.text, m.node, m.to_person) for m in misses] == [
        ("礼品卡可以退吗", "", False),  # newest first; the [sensitive] turn is never shown
        ("can I return a gift card", "returns_help", True),
    ]


def test_questions_the_knowledge_base_could_not_answer_are_listed_for_authors(tmp_path: Path) -> None:
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    write_calls(store)
    db = sqlite3.connect(str(tmp_path / "calls.sqlite3"))
    check(knowledge_misses(db, AnalyticsFilter()))
    assert [m.text for m in knowledge_misses(db, AnalyticsFilter(lang="zh-CN"))] == ["礼品卡可以退吗"]


def test_the_same_misses_come_from_the_shared_postgresql(postgres_dsn: str, tmp_path: Path) -> None:
    store = SqliteRecordStore(tmp_path / "calls.sqlite3", ship=True)
    write_calls(store)
    shipper = Shipper(store, postgres_dsn, node="a")
    shipper.start()
    try:
        deadline = time.monotonic() + 20
        while store.backlog() and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the outbox, bounded
    finally:
        shipper.stop()
    with psycopg.connect(postgres_dsn) as db:
        check(knowledge_misses(db, AnalyticsFilter(), dialect="postgres"))
