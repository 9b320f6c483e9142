"""Call-record benchmark: what writing events as the call goes costs a turn, and how fast the analytics answer.

    .venv/bin/python bench/records.py [--events 20000] [--calls 1000000] [--postgres DSN]

1. Append latency: events appended one by one to the SQLite store (WAL, synchronous=NORMAL, a commit each, as the
   server does on its event loop): p50 / p99 / max µs and events per second. A turn writes 2-4 events.
2. Analytics: `--calls` synthetic calls (10-20 events each: nodes, caller turns with intents and ASR confidence,
   turn latencies, nomatch/noinput, queue joins in three queues with the announced wait, agent answers and hang-ups,
   outcomes; seeded) loaded in bulk, then the full analytics report timed (3 runs, best and worst) for one dialplan,
   and again for one queue per hour (the queue filter reads `queue_rollups`), on SQLite and, with `--postgres`, on
   PostgreSQL (a fresh database is created on that server and dropped).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import BenchRecord  # noqa: E402
from voicebot.records.analytics import AnalyticsFilter, report  # noqa: E402
from voicebot.records.store import SqliteRecordStore  # noqa: E402
from voicebot.records.summary import ABANDONED, CallSummary, day_of, replay, rollups_for_event  # noqa: E402

NODES = ["greet", "main_menu", "identify", "ask_pin", "balance", "block_card", "anything_else", "to_agent"]
INTENTS = ["check_balance", "lost_card", "repayment_info", "agent", "goodbye", None, "out_of_scope"]
QUEUES = ["banking", "cards", "loans"]
Rollups = dict[tuple[str, ...], int]


def append_latency(path: Path, events: int) -> dict[str, float]:
    store = SqliteRecordStore(path)
    timings = []
    for index in range(events):
        call_id = f"lat-{index // 20}"
        started = time.perf_counter()
        store.append(call_id, "caller", {"text": "I would like to check my balance please", "intent": "check_balance",
                                          "lang": "en", "asr_confidence": 0.91})
        timings.append((time.perf_counter() - started) * 1e6)
    store.close()
    timings.sort()
    return {"p50_us": statistics.median(timings), "p99_us": timings[int(len(timings) * 0.99)],
            "max_us": timings[-1], "events_per_s": len(timings) / (sum(timings) / 1e6)}


def synthetic(calls: int, rollups: Rollups, queue_rollups: Rollups, seed: int = 1):  # type: ignore[no-untyped-def]
    """(call row, event rows) of `calls` plausible calls; their roll-ups are added to `rollups` and `queue_rollups`,
    computed by the same rules the stores apply (voicebot/records/summary.py)."""
    rng = random.Random(seed)
    start = 1_796_601_600.0
    for index in range(calls):
        call_id = f"c{index}"
        t = start + index * 3.0
        events = [("call_started", {"dialplan": "finance"})]
        if rng.random() < 0.3:
            events.append(("language", {"lang": "zh-CN", "node": "greet"}))
        visited = NODES[:rng.randint(2, 6)]
        for node in visited:
            events.append(("node", {"node": node}))
            if rng.random() < 0.15:
                events.append((rng.choice(["nomatch", "noinput"]), {"node": node}))
            events.append(("caller", {"text": "words", "intent": rng.choice(INTENTS), "lang": "en",
                                      "asr_confidence": round(rng.uniform(0.2, 1.0), 2)}))
            events.append(("turn", {"reply_ms": rng.randint(150, 4000), "asr_ms": 400, "nlu_ms": 3}))
        fate = rng.random()
        outcome = "completed"
        queue = rng.choice(QUEUES)
        low = rng.choice([0, 60, 120, 180])
        announced = ("ewt_announced", {"low_s": low, "high_s": low + 120, "position": 2})
        if fate < 0.25:
            events += [("queue_joined", {"queue": queue}), announced, ("agent_answered", {"agent": "a1"})]
            outcome = "agent"
        elif fate < 0.32:
            events += [("queue_joined", {"queue": queue}), announced, ("caller_hangup", {"node": visited[-1]})]
            outcome = ""
        elif fate < 0.40:
            events.append(("caller_hangup", {"node": visited[-1]}))
            outcome = ""
        events.append(("call_ended", {"outcome": outcome}))
        summary = CallSummary(dialplan="finance")
        rows = []
        times = [t + seq + (rng.randint(0, 300) if kind == "agent_answered" else 0) for seq, (kind, _) in
                 enumerate(events)]  # an agent answers within 5 minutes of joining
        for seq, (kind, data) in enumerate(events):
            joined_before = bool(summary.queue)
            for metric, key in rollups_for_event(summary, kind, data, times[seq]):
                _add(rollups, (day_of(times[seq]), summary.dialplan, summary.lang, metric, key))
                if summary.queue and joined_before:
                    _add(queue_rollups, (day_of(times[seq]), summary.dialplan, summary.lang, summary.queue, metric,
                                         key))
            if summary.queue and not joined_before:
                earlier = [(times[i], k, d) for i, (k, d) in enumerate(events[:seq])]
                for when, lang, metric, key in replay(summary.dialplan, earlier):
                    _add(queue_rollups, (day_of(when), summary.dialplan, lang, summary.queue, metric, key))
            rows.append((call_id, seq + 1, times[seq], kind, json.dumps(data)))
        ended = max(times) + 60
        klass = summary.final_class(outcome)
        if klass in ABANDONED:
            _add(rollups, (day_of(ended), summary.dialplan, summary.lang, "left", summary.node))
            if summary.queue:
                _add(queue_rollups, (day_of(ended), summary.dialplan, summary.lang, summary.queue, "left",
                                     summary.node))
        yield ((call_id, t, ended, "finance", "", "", "sip", outcome, "", ended - t, None, *summary.row()[:5], klass,
                *summary.row()[5:]), rows)


def _add(counters: Rollups, key: tuple[str, ...]) -> None:
    counters[key] = counters.get(key, 0) + 1


CALL_COLUMNS = ("call_id, started_at, ended_at, dialplan, caller, callee, channel, outcome, end_reason, duration_s, "
                "recording, node, lang, queued, to_person, left_early, class, queue, queued_at, answered_at, ewt_at, "
                "ewt_low, ewt_high")


def load_sqlite(path: Path, calls: int) -> int:
    SqliteRecordStore(path).close()
    db = sqlite3.connect(str(path))
    events = 0
    rollups: Rollups = {}
    queue_rollups: Rollups = {}
    batch_calls, batch_events = [], []
    insert_calls = f"INSERT INTO calls ({CALL_COLUMNS}) VALUES ({', '.join('?' * 23)})"
    for call, rows in synthetic(calls, rollups, queue_rollups):
        batch_calls.append(call)
        batch_events.extend(rows)
        if len(batch_calls) >= 20000:
            db.executemany(insert_calls, batch_calls)
            db.executemany("INSERT INTO call_events VALUES (?,?,?,?,?)", batch_events)
            events += len(batch_events)
            batch_calls, batch_events = [], []
    db.executemany(insert_calls, batch_calls)
    db.executemany("INSERT INTO call_events VALUES (?,?,?,?,?)", batch_events)
    db.executemany("INSERT INTO rollups VALUES (?,?,?,?,?,?)", [(*k, v) for k, v in rollups.items()])
    db.executemany("INSERT INTO queue_rollups (day, dialplan, lang, queue, metric, key, count) VALUES (?,?,?,?,?,?,?)",
                   [(*k, v) for k, v in queue_rollups.items()])
    db.commit()
    db.execute("ANALYZE")
    db.close()
    return events + len(batch_events)


def time_report(connect, dialect: str, runs: int = 3, *, queue: str | None = None) -> list[float]:  # type: ignore[no-untyped-def]
    """Seconds per full report: for the dialplan, or (`queue`) for one queue sliced per hour."""
    seconds = []
    scope = AnalyticsFilter(dialplan="finance") if queue is None else AnalyticsFilter(queue=queue)
    for _ in range(runs):
        db = connect()
        started = time.perf_counter()
        data = report(db, scope, dialect=dialect, bucket="day" if queue is None else "hour")
        seconds.append(time.perf_counter() - started)
        assert data["calls"] > 0 and data["service"]["series"] and data["ewt_honesty"]
        assert sum(sum(counts) for counts in data["turn_latency_ms"]["by_lang"].values()) > 0
        db.close()
    return seconds


def load_postgres(dsn: str, calls: int) -> None:
    import psycopg

    from voicebot.records.postgres import migrate

    rollups: Rollups = {}
    queue_rollups: Rollups = {}
    with psycopg.connect(dsn, autocommit=True) as db:
        migrate(db)
        with db.cursor() as cursor:
            with cursor.copy(f"COPY calls ({CALL_COLUMNS}) FROM STDIN") as copy_calls:
                generated = list(synthetic(calls, rollups, queue_rollups))
                for call, _ in generated:
                    copy_calls.write_row(call)
            with cursor.copy("COPY call_events (call_id, seq, t, kind, data) FROM STDIN") as copy_events:
                for _, rows in generated:
                    for row in rows:
                        copy_events.write_row(row)
            with cursor.copy("COPY rollups (day, dialplan, lang, metric, key, count) FROM STDIN") as copy_rollups:
                for key, count in rollups.items():
                    copy_rollups.write_row((*key, count))
            with cursor.copy("COPY queue_rollups (day, dialplan, lang, queue, metric, key, count) FROM STDIN") as copy:
                for key, count in queue_rollups.items():
                    copy.write_row((*key, count))
        db.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="a PostgreSQL server DSN to create a scratch database on")
    args = parser.parse_args()
    with BenchRecord("records") as record, tempfile.TemporaryDirectory() as scratch:
        latency = append_latency(Path(scratch) / "latency.sqlite3", args.events)
        print(f"append one event (SQLite, WAL, a commit each): p50 {latency['p50_us']:.0f} µs, "
              f"p99 {latency['p99_us']:.0f} µs, max {latency['max_us']:.0f} µs, {latency['events_per_s']:.0f} events/s")
        path = Path(scratch) / "calls.sqlite3"
        started = time.perf_counter()
        events = load_sqlite(path, args.calls)
        print(f"loaded {args.calls} calls, {events} events into SQLite in {time.perf_counter() - started:.0f} s")
        sqlite_s = time_report(lambda: sqlite3.connect(f"file:{path}?mode=ro", uri=True), "sqlite")
        print(f"analytics report on SQLite, {args.calls} calls: best {min(sqlite_s):.2f} s, worst {max(sqlite_s):.2f} s")
        sqlite_q = time_report(lambda: sqlite3.connect(f"file:{path}?mode=ro", uri=True), "sqlite", queue="cards")
        print(f"  filtered to one queue, per hour: best {min(sqlite_q):.2f} s, worst {max(sqlite_q):.2f} s")
        record.data.update(append=latency, calls=args.calls, events=events, sqlite_report_s=sqlite_s,
                           sqlite_queue_report_s=sqlite_q)
        record.row("Call records: one event appended (SQLite WAL, committed; a turn writes 2-4)",
                   f"p50 {latency['p50_us']:.0f} µs, p99 {latency['p99_us']:.0f} µs "
                   f"({latency['events_per_s']:.0f} events/s on one core)")
        figure = (f"SQLite best {min(sqlite_s):.2f} s / worst {max(sqlite_s):.2f} s (one queue per hour: best "
                  f"{min(sqlite_q):.2f} s)")
        if args.postgres:
            import psycopg

            name = f"vb_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            dsn = args.postgres.rsplit("/", 1)[0] + f"/{name}"
            try:
                started = time.perf_counter()
                load_postgres(dsn, args.calls)
                print(f"loaded into PostgreSQL in {time.perf_counter() - started:.0f} s")
                pg_s = time_report(lambda: psycopg.connect(dsn), "postgres")
                print(f"analytics report on PostgreSQL: best {min(pg_s):.2f} s, worst {max(pg_s):.2f} s")
                pg_q = time_report(lambda: psycopg.connect(dsn), "postgres", queue="cards")
                print(f"  filtered to one queue, per hour: best {min(pg_q):.2f} s, worst {max(pg_q):.2f} s")
                record.data.update(postgres_report_s=pg_s, postgres_queue_report_s=pg_q)
                figure += (f"; PostgreSQL best {min(pg_s):.2f} s / worst {max(pg_s):.2f} s (one queue per hour: best "
                           f"{min(pg_q):.2f} s)")
            finally:
                with psycopg.connect(args.postgres, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        record.row(f"Analytics report (containment, outcomes, hot spots, funnel, intents, languages, ASR confidence "
                   f"and turn latency histograms, EWT honesty, ASA and service level per queue) over "
                   f"{args.calls:,} synthetic calls ({events:,} events)", figure)


if __name__ == "__main__":
    main()
