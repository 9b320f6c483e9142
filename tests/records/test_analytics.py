"""Analytics over the call records match what is computed independently from the events that were written."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from voicebot.records.analytics import AnalyticsFilter, report, report_csv
from voicebot.records.store import SqliteRecordStore

NODES = ["greet", "menu", "verify", "balance", "block_card"]
INTENTS = ["check_balance", "lost_card", "agent", None, "out_of_scope"]


def _write_calls(store: SqliteRecordStore, count: int, seed: int) -> list[dict]:
    """Random but plausible calls; returns what each one was, as the test's own truth. Every event has its own time
    (the call's start + seconds), so queue waits and the announced ranges are exact."""
    rng = random.Random(seed)
    truth = []
    for index in range(count):
        call_id = f"call-{index}"
        dialplan = rng.choice(["finance", "ecommerce"])
        started = 1_000_000.0 + index * 60
        clock = iter(range(1, 10_000))
        store.start_call(call_id, dialplan=dialplan, started_at=started)
        visited = NODES[:rng.randint(1, len(NODES))]
        nomatches: Counter[str] = Counter()
        intents: list[str | None] = []
        confidences: list[float] = []
        latencies: list[int] = []
        lang = "zh-CN" if rng.random() < 0.3 else ""
        if lang:
            store.append(call_id, "language", {"node": "greet", "lang": lang}, t=started + next(clock))
        for node in visited:
            store.append(call_id, "node", {"node": node}, t=started + next(clock))
            for _ in range(rng.randint(0, 2)):
                kind = rng.choice(["nomatch", "noinput"])
                store.append(call_id, kind, {"node": node}, t=started + next(clock))
                nomatches[(node, kind)] += 1
            if rng.random() < 0.2:  # the recogniser's result was too unsure to use
                confidence = rng.choice([0.05, 0.1, 0.21, 0.3])
                store.append(call_id, "caller", {"text": "", "kind": "nomatch", "asr_confidence": confidence},
                             t=started + next(clock))
                confidences.append(confidence)
            intent = rng.choice(INTENTS)
            confidence = rng.choice([0.35, 0.5, 0.69, 0.7, 0.81, 0.9, 0.99, 1.0])
            store.append(call_id, "caller", {"text": "something", "intent": intent, "node": node,
                                             "asr_confidence": confidence}, t=started + next(clock))
            intents.append(intent)
            confidences.append(confidence)
            reply_ms = rng.choice([80, 100, 101, 450, 700, 950, 1500, 2600, 4999, 7000])
            store.append(call_id, "turn", {"reply_ms": reply_ms, "asr_ms": 300}, t=started + next(clock))
            latencies.append(reply_ms)
        store.append(call_id, "caller", {"text": "4", "kind": "dtmf"}, t=started + next(clock))  # keys: no figures
        fate = rng.choice(["contained", "transferred", "abandoned_in_bot", "abandoned_in_queue", "callback", "lost"])
        queue = rng.choice(["banking", "cards"]) if fate in ("transferred", "abandoned_in_queue", "callback") else None
        joined = answered = told = None
        last = started + next(clock)
        if queue is not None:
            joined = last
            store.append(call_id, "queue_joined", {"queue": queue}, t=joined)
            if rng.random() < 0.8:  # the wait was announced (a range in seconds), 10 s after joining
                low = rng.choice([0, 60, 120])
                told = (joined + 10, low, low + 120)
                store.append(call_id, "ewt_announced", {"node": visited[-1], "low_s": low, "high_s": low + 120,
                                                        "position": 2}, t=told[0])
                store.append(call_id, "ewt_announced", {"low_s": 900, "high_s": 1200}, t=told[0] + 30)  # later
            last = joined + rng.choice([5, 20, 21, 64, 124, 150, 184, 250, 300])
        if fate == "transferred":
            answered = last
            store.append(call_id, "agent_answered", {"agent": "a1"}, t=answered)
            store.append(call_id, "agent_answered", {"agent": "a2"}, t=answered + 50)  # a second answer: not it
        if fate.startswith("abandoned"):
            store.append(call_id, "caller_hangup", {"node": visited[-1]}, t=last)
        outcome = {"contained": "completed", "transferred": "agent", "callback": "callback"}.get(fate, "")
        if fate != "lost":
            store.end_call(call_id, outcome=outcome, ended_at=last + 60)
        truth.append({"dialplan": dialplan, "fate": "in_progress_or_lost" if fate == "lost" else fate,
                      "visited": visited, "nomatches": nomatches, "intents": intents,
                      "lang": lang or "en-US", "last": visited[-1], "confidences": confidences,
                      "latencies": latencies, "queue": queue, "joined": joined, "answered": answered, "told": told})
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


LATENCY_BOUNDS = [100, 200, 300, 400, 500, 700, 1000, 1500, 2000, 3000, 5000]


def expected_histograms(calls: list[dict]) -> tuple[dict, dict]:
    """(asr_confidence, turn_latency_ms) as the report should give them, counted from the calls' own events."""
    confidence: dict[str, list[int]] = {}
    latency: dict[str, list[int]] = {}
    for call in calls:
        for value in call["confidences"]:
            tenth = min(9, round(value * 100) // 10)
            confidence.setdefault(call["lang"], [0] * 10)[tenth] += 1
        for ms in call["latencies"]:
            slot = next((i for i, bound in enumerate(LATENCY_BOUNDS) if ms <= bound), len(LATENCY_BOUNDS))
            latency.setdefault(call["lang"], [0] * 12)[slot] += 1
    return ({"buckets": [f"0.{tenth}" for tenth in range(10)], "by_lang": confidence},
            {"buckets": [*map(str, LATENCY_BOUNDS), "+Inf"], "by_lang": latency})


def expected_ewt(calls: list[dict]) -> list[dict]:
    """Per queue: answered within / before / after the first announced range, the wait counted from it."""
    tally: dict[str, Counter[str]] = {}
    for call in calls:
        if call["told"] is None:
            continue
        at, low, high = call["told"]
        counts = tally.setdefault(call["queue"], Counter())
        if call["answered"] is None:
            counts["left"] += 1
            continue
        wait = call["answered"] - at
        counts["early" if wait < low else "late" if wait > high else "within"] += 1
    out = []
    for queue in sorted(tally):
        c = tally[queue]
        answered = c["early"] + c["within"] + c["late"]
        share = (lambda n: round(n / answered, 4) if answered else 0.0)  # noqa: E731
        out.append({"queue": queue, "answered": answered, "within": c["within"], "early": c["early"],
                    "late": c["late"], "left": c["left"], "within_share": share(c["within"]),
                    "early_share": share(c["early"]), "late_share": share(c["late"])})
    return out


def expected_service(calls: list[dict], bucket: str, threshold_s: float) -> dict:
    size = {"hour": 3600, "day": 86400}[bucket]
    cells: dict[tuple[str, int], list[dict]] = {}
    for call in calls:
        if call["queue"] is not None:
            cells.setdefault((call["queue"], int(call["joined"] // size)), []).append(call)

    def figures(group: list[dict]) -> dict:
        waits = [c["answered"] - c["joined"] for c in group if c["answered"] is not None]
        return {"offered": len(group), "answered": len(waits),
                "asa_s": round(sum(waits) / len(waits), 2) if waits else None,
                "service_level": round(sum(w <= threshold_s for w in waits) / len(group), 4),
                "abandoned": sum(c["fate"] == "abandoned_in_queue" for c in group)}

    series = [{"queue": queue, "start": dt.datetime.fromtimestamp(slot * size, dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%MZ"), **figures(group)} for (queue, slot), group in sorted(cells.items())]
    queues = sorted({queue for queue, _ in cells})
    totals = [{"queue": queue, **figures([c for (q, _), g in cells.items() if q == queue for c in g])}
              for queue in queues]
    return {"bucket": bucket, "threshold_s": threshold_s, "queues": totals, "series": series}


def check_report(data: dict, calls: list[dict], *, bucket: str = "day", threshold_s: float = 20.0) -> None:
    """Every section of `data` equals what the calls' own events say."""
    assert data["calls"] == len(calls)
    assert data["outcomes"] == dict(Counter(call["fate"] for call in calls))
    spots_got: Counter = Counter()
    for spot in data["hot_spots"]:
        spots_got.update({(spot["dialplan"], spot["node"], kind): spot[kind] for kind in ("nomatch", "noinput")})
    spots_truth: Counter = Counter()
    for call in calls:
        spots_truth.update({(call["dialplan"], *key): count for key, count in call["nomatches"].items()})
    assert +spots_got == +spots_truth
    entered = Counter((call["dialplan"], node) for call in calls for node in call["visited"])
    left = Counter((call["dialplan"], call["last"]) for call in calls if call["fate"].startswith("abandoned"))
    assert {(s["dialplan"], s["node"]): (s["calls"], s["left_here"]) for s in data["funnel"]} == {
        place: (entered[place], left[place]) for place in entered}
    heard = [intent for call in calls for intent in call["intents"]]
    assert {i["intent"]: i["count"] for i in data["top_intents"]} == dict(Counter(i for i in heard if i))
    assert data["languages"] == dict(Counter(call["lang"] for call in calls))
    confidence, latency = expected_histograms(calls)
    assert data["asr_confidence"] == confidence
    assert data["turn_latency_ms"] == latency
    assert data["ewt_honesty"] == expected_ewt(calls)
    assert data["service"] == expected_service(calls, bucket, threshold_s)


def test_new_sections_match_the_events_written(tmp_path: Path) -> None:
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    truth = _write_calls(store, 300, seed=11)
    db = sqlite3.connect(str(tmp_path / "calls.sqlite3"))
    check_report(report(db, top=100), truth)
    finance = [call for call in truth if call["dialplan"] == "finance"]
    check_report(report(db, AnalyticsFilter(dialplan="finance"), top=100, bucket="hour", service_level_s=64),
                 finance, bucket="hour", threshold_s=64)
    honesty = {item["queue"]: item for item in report(db)["ewt_honesty"]}
    assert all(honesty[q]["early"] and honesty[q]["within"] and honesty[q]["late"] and honesty[q]["left"]
               for q in ("banking", "cards"))  # the data exercise every branch


def test_the_queue_filter_applies_to_every_section(tmp_path: Path) -> None:
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    truth = _write_calls(store, 300, seed=5)
    db = sqlite3.connect(str(tmp_path / "calls.sqlite3"))
    for queue in ("banking", "cards"):
        check_report(report(db, AnalyticsFilter(queue=queue), top=100), [c for c in truth if c["queue"] == queue])
    check_report(report(db, AnalyticsFilter(queue="cards", lang="zh-CN"), top=100, bucket="hour"),
                 [c for c in truth if c["queue"] == "cards" and c["lang"] == "zh-CN"], bucket="hour")
    assert report(db, AnalyticsFilter(queue="nobody"))["calls"] == 0


def test_a_restarted_writer_keeps_counting_a_call_under_its_queue(tmp_path: Path) -> None:
    first = SqliteRecordStore(tmp_path / "calls.sqlite3")
    first.start_call("c1", dialplan="finance", started_at=1_000_000.0)
    first.append("c1", "caller", {"text": "hi", "intent": "agent", "asr_confidence": 0.92}, t=1_000_001.0)
    first.append("c1", "queue_joined", {"queue": "cards"}, t=1_000_002.0)
    first.close()
    second = SqliteRecordStore(tmp_path / "calls.sqlite3")  # the summary is rebuilt from the calls row
    second.append("c1", "turn", {"reply_ms": 640}, t=1_000_003.0)
    second.append("c1", "agent_answered", {"agent": "a1"}, t=1_000_012.0)
    second.end_call("c1", outcome="agent", ended_at=1_000_100.0)
    data = report(sqlite3.connect(str(tmp_path / "calls.sqlite3")), AnalyticsFilter(queue="cards"))
    assert data["top_intents"] == [{"intent": "agent", "count": 1}]
    assert data["asr_confidence"]["by_lang"] == {"en-US": [0] * 9 + [1]}
    assert data["turn_latency_ms"]["by_lang"] == {"en-US": [0] * 5 + [1] + [0] * 6}
    assert data["service"]["queues"] == [{"queue": "cards", "offered": 1, "answered": 1, "asa_s": 10.0,
                                          "service_level": 1.0, "abandoned": 0}]


def test_a_version_2_file_gains_the_queue_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(str(path))
    db.executescript("CREATE TABLE calls (call_id TEXT PRIMARY KEY, started_at REAL NOT NULL, ended_at REAL, "
                     "dialplan TEXT, caller TEXT, callee TEXT, channel TEXT, outcome TEXT, end_reason TEXT, "
                     "duration_s REAL, recording TEXT, node TEXT, lang TEXT NOT NULL DEFAULT '', queued INTEGER "
                     "NOT NULL DEFAULT 0, to_person INTEGER NOT NULL DEFAULT 0, left_early INTEGER NOT NULL "
                     "DEFAULT 0, class TEXT); PRAGMA user_version=2;")
    db.close()
    store = SqliteRecordStore(path)
    store.start_call("c1", dialplan="finance", started_at=1_000_000.0)
    store.append("c1", "queue_joined", {"queue": "cards"}, t=1_000_001.0)
    store.append("c1", "agent_answered", {"agent": "a1"}, t=1_000_031.0)
    store.end_call("c1", outcome="agent", ended_at=1_000_100.0)
    data = report(sqlite3.connect(str(path)), AnalyticsFilter(queue="cards"))
    assert data["service"]["queues"][0]["asa_s"] == 30.0


def test_bad_slicing_is_refused() -> None:
    db = sqlite3.connect(":memory:")
    with pytest.raises(ValueError, match="bucket must be one of hour, day"):
        report(db, bucket="week")
    with pytest.raises(ValueError, match="service_level_s"):
        report(db, service_level_s=0)


def test_a_language_no_counter_saw_and_other_endings_are_still_counted(tmp_path: Path) -> None:
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    store.start_call("c1", dialplan="finance", started_at=1_000_000.0)
    store.append("c1", "language", {"lang": "yue-HK"}, t=1_000_001.0)  # adds no roll-up: only the calls row knows
    store.end_call("c1", outcome="dialplan ended", ended_at=1_000_002.0)
    store.start_call("c2", dialplan="finance", started_at=1_000_010.0)
    store.append("c2", "node", {"node": "greet"}, t=1_000_011.0)
    store.end_call("c2", outcome="completed", ended_at=1_000_012.0)
    data = report(sqlite3.connect(str(tmp_path / "calls.sqlite3")))
    assert data["languages"] == {"yue-HK": 1, "en-US": 1}
    assert data["outcomes"] == {"other": 1, "contained": 1} and data["rates"] == {"other": 0.5, "contained": 0.5}
