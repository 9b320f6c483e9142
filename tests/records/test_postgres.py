"""Call records of several nodes in one real PostgreSQL: shipped from each node's SQLite outbox, idempotent,
buffered while the database is down and caught up after; analytics give the same figures as on SQLite."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psycopg
import pytest

from tests.records.pg import Cluster, fresh_database
from tests.records.test_analytics import _write_calls, check_report
from voicebot.records.analytics import AnalyticsFilter, report
from voicebot.records.postgres import Shipper, migrate
from voicebot.records.store import SqliteRecordStore

pytestmark = pytest.mark.timeout(120)


def _wait(condition, timeout_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_two_nodes_write_to_one_database_and_analytics_match_sqlite(postgres_dsn: str, tmp_path: Path) -> None:
    node_a = SqliteRecordStore(tmp_path / "a.sqlite3", ship=True)
    node_b = SqliteRecordStore(tmp_path / "b.sqlite3", ship=True)
    truth = _write_calls(node_a, 40, seed=1)
    # node b's calls get other ids (Call-IDs are unique across nodes)
    truth += _write_calls(_Renamed(node_b, "b-"), 40, seed=2)
    shippers = [Shipper(node_a, postgres_dsn, node="a"), Shipper(node_b, postgres_dsn, node="b")]
    for shipper in shippers:
        shipper.start()
    try:
        _wait(lambda: node_a.backlog() == 0 and node_b.backlog() == 0)
    finally:
        for shipper in shippers:
            shipper.stop()
    with psycopg.connect(postgres_dsn) as db:
        servers = dict(db.execute("SELECT server_node, COUNT(*) FROM calls GROUP BY server_node").fetchall())
        assert servers == {"a": 40, "b": 40}
        events = db.execute("SELECT COUNT(*) FROM call_events").fetchone()[0]
        local = sum(sqlite3.connect(str(tmp_path / f"{n}.sqlite3")).execute(
            "SELECT COUNT(*) FROM call_events").fetchone()[0] for n in "ab")
        assert events == local
        remote = report(db, AnalyticsFilter(dialplan="finance"), top=100, dialect="postgres")
        # every section, the queue filter and hourly slices too, equal what the events written say
        check_report(remote, [call for call in truth if call["dialplan"] == "finance"])
        for queue in ("banking", "cards"):
            check_report(report(db, AnalyticsFilter(queue=queue), top=100, dialect="postgres", bucket="hour",
                                service_level_s=64), [call for call in truth if call["queue"] == queue],
                         bucket="hour", threshold_s=64)
    # The same figures as the SQLite queries give on the union of both nodes' files.
    merged = SqliteRecordStore(tmp_path / "merged.sqlite3")
    merged.close()
    union = sqlite3.connect(str(tmp_path / "merged.sqlite3"))
    for name in "ab":
        union.execute(f"ATTACH DATABASE '{tmp_path / (name + '.sqlite3')}' AS n{name}")
        union.execute(f"INSERT INTO calls SELECT * FROM n{name}.calls")
        union.execute(f"INSERT INTO call_events SELECT * FROM n{name}.call_events")
        union.execute(f"INSERT INTO rollups SELECT * FROM n{name}.rollups WHERE true ON CONFLICT "
                      "(day, dialplan, lang, metric, key) DO UPDATE SET count = count + excluded.count")
        union.execute(f"INSERT INTO queue_rollups SELECT * FROM n{name}.queue_rollups WHERE true ON CONFLICT "
                      "(queue, day, dialplan, lang, metric, key) DO UPDATE SET count = count + excluded.count")
    union.commit()
    local_report = report(union, AnalyticsFilter(dialplan="finance"), top=100)
    for key in ("calls", "outcomes", "containment_rate", "not_understood_share", "languages", "turns",
                "asr_confidence", "turn_latency_ms", "ewt_honesty", "service"):
        assert remote[key] == local_report[key], key
    assert sorted(map(str, remote["hot_spots"])) == sorted(map(str, local_report["hot_spots"]))
    assert sorted(map(str, remote["funnel"])) == sorted(map(str, local_report["funnel"]))


def test_an_outage_keeps_writes_locally_and_catches_up_in_order(tmp_path: Path) -> None:
    cluster = Cluster()  # our own server, so that it can be stopped
    cluster.start()
    try:
        with fresh_database(cluster.dsn) as dsn:
            store = SqliteRecordStore(tmp_path / "node.sqlite3", ship=True)
            shipper = Shipper(store, dsn, node="n1", max_backoff_s=0.5)
            shipper.start()
            store.start_call("c1", dialplan="finance")
            _wait(lambda: store.backlog() == 0)
            cluster.stop()  # the database goes away mid-call
            for index in range(20):
                store.append("c1", "node", {"node": f"n{index}"})
            store.end_call("c1", outcome="completed")
            failures = shipper.failures
            shipper.kick()
            _wait(lambda: shipper.failures >= failures + 2)  # it tried, and failed, twice with the server down
            assert store.backlog() == 22  # nothing lost, nothing shipped
            cluster.start()
            _wait(lambda: store.backlog() == 0, timeout_s=30)
            shipper.stop()
            with psycopg.connect(dsn) as db:
                seqs = [row[0] for row in db.execute(
                    "SELECT seq FROM call_events WHERE call_id = 'c1' ORDER BY seq").fetchall()]
                outcome, node = db.execute("SELECT outcome, node FROM calls WHERE call_id = 'c1'").fetchone()
            assert seqs == list(range(1, 23)) and (outcome, node) == ("completed", "n19")
    finally:
        cluster.remove()


def test_migrations_apply_once(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        assert migrate(db) == migrate(db) == 4
        assert db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == 4


class _Renamed:
    """A record store whose call ids get a prefix (a second node's calls)."""

    def __init__(self, store: SqliteRecordStore, prefix: str) -> None:
        self.store, self.prefix = store, prefix

    def start_call(self, call_id: str, **fields):  # type: ignore[no-untyped-def]
        return self.store.start_call(self.prefix + call_id, **fields)

    def append(self, call_id: str, kind: str, data, **fields):  # type: ignore[no-untyped-def]
        return self.store.append(self.prefix + call_id, kind, data, **fields)

    def end_call(self, call_id: str, **fields):  # type: ignore[no-untyped-def]
        return self.store.end_call(self.prefix + call_id, **fields)
