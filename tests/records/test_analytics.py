"""Analytics over the call records match what is computed independently from the events that were written."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from pathlib import Path

from voicebot.records.analytics import AnalyticsFilter, report, report_csv
from voicebot.records.store import SqliteRecordStore

NODES = ["greet", "menu", "verify", "balance", "block_card"]
INTENTS = ["check_balance", "lost_card", "agent", None, "out_of_scope"]


def _write_calls(store: SqliteRecordStore, count: int, seed: int) -> list[dict]:
    """Random but plausible calls; returns what each one was, as the test's own truth."""
    rng = random.Random(seed)
    truth = []
    for index in range(count):
        call_id = f"call-{index}"
        dialplan = rng.choice(["finance", "ecommerce"])
        started = 1_000_000.0 + index * 60
        store.start_call(call_id, dialplan=dialplan, started_at=started)
        visited = NODES[:rng.randint(1, len(NODES))]
        nomatches: Counter[str] = Counter()
        intents: list[str | None] = []
        lang = "zh-CN" if rng.random() < 0.3 else ""
        if lang:
            store.append(call_id, "language", {"node": "greet", "lang": lang})
        for node in visited:
            store.append(call_id, "node", {"node": node})
            for _ in range(rng.randint(0, 2)):
                kind = rng.choice(["nomatch", "noinput"])
                store.append(call_id, kind, {"node": node})
                nomatches[(node, kind)] += 1
            intent = rng.choice(INTENTS)
            store.append(call_id, "caller", {"text": "something", "intent": intent, "node": node})
            intents.append(intent)
        fate = rng.choice(["contained", "transferred", "abandoned_in_bot", "abandoned_in_queue", "callback", "lost"])
        if fate in ("transferred", "abandoned_in_queue", "callback"):
            store.append(call_id, "queue_joined", {"queue": "banking"})
        if fate == "transferred":
            store.append(call_id, "agent_answered", {"agent": "a1"})
        if fate.startswith("abandoned"):
            store.append(call_id, "caller_hangup", {"node": visited[-1]})
        outcome = {"contained": "completed", "transferred": "agent", "callback": "callback"}.get(fate, "")
        if fate != "lost":
            store.end_call(call_id, outcome=outcome, ended_at=started + 30)
        truth.append({"dialplan": dialplan, "fate": "in_progress_or_lost" if fate == "lost" else fate,
                      "visited": visited, "nomatches": nomatches, "intents": intents,
                      "lang": lang or "en-US", "last": visited[-1]})
    return truth


def test_report_matches_the_events_written(tmp_path: Path) -> None:
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    truth = _write_calls(store, 300, seed=7)
    db = sqlite3.connect(str(tmp_path / "calls.sqlite3"))
    data = report(db, AnalyticsFilter(dialplan="finance"), top=100)

    finance = [call for call in truth if call["dialplan"] == "finance"]
    assert data["calls"] == len(finance)
    assert data["outcomes"] == dict(Counter(call["fate"] for call in finance))
    contained = sum(call["fate"] == "contained" for call in finance)
    assert data["containment_rate"] == round(contained / len(finance), 4)

    spots = Counter()
    for call in finance:
        spots.update(call["nomatches"])
    got = {(s["node"], kind): s[kind] for s in data["hot_spots"] for kind in ("nomatch", "noinput") if s[kind]}
    assert got == {key: count for key, count in spots.items() if count}

    entered = Counter(node for call in finance for node in call["visited"])
    left = Counter(call["last"] for call in finance if call["fate"].startswith("abandoned"))
    assert {s["node"]: (s["calls"], s["left_here"]) for s in data["funnel"]} == {
        node: (entered[node], left[node]) for node in entered}

    heard = [intent for call in finance for intent in call["intents"]]
    assert {i["intent"]: i["count"] for i in data["top_intents"]} == dict(Counter(i for i in heard if i))
    not_understood = sum(intent in (None, "out_of_scope") for intent in heard)
    assert data["not_understood_share"] == round(not_understood / len(heard), 4)
    assert data["languages"] == dict(Counter(call["lang"] for call in finance))


def test_filters_by_time_and_language_and_csv_export(tmp_path: Path) -> None:
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    truth = _write_calls(store, 120, seed=3)
    db = sqlite3.connect(str(tmp_path / "calls.sqlite3"))
    window = report(db, AnalyticsFilter(since=1_000_000.0 + 60 * 10, until=1_000_000.0 + 60 * 20))
    assert window["calls"] == 10
    mandarin = report(db, AnalyticsFilter(lang="zh-CN"))
    assert mandarin["calls"] == sum(call["lang"] == "zh-CN" for call in truth)
    text = report_csv(mandarin)
    assert text.startswith("section,key,value") and f"calls,total,{mandarin['calls']}" in text
