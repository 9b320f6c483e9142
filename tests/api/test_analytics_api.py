"""GET /analytics and /analytics.csv: the records' figures for supervisors and admins, filtered; agents refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.api.conftest import bearer
from voicebot.api.analytics import add_analytics_routes
from voicebot.api.app import create_app
from voicebot.records.store import SqliteRecordStore

pytestmark = pytest.mark.asyncio


def _calls(path: Path) -> None:
    store = SqliteRecordStore(path)
    day = 1_796_601_600.0  # 2026-12-07T00:00:00Z
    for index, (dialplan, outcome, queued) in enumerate([("finance", "completed", False), ("finance", "agent", True),
                                                         ("ecommerce", "completed", False)]):
        call_id = f"c{index}"
        store.start_call(call_id, dialplan=dialplan, started_at=day + 3600 * index)
        store.append(call_id, "node", {"node": "menu"})
        store.append(call_id, "nomatch", {"node": "menu"})
        if queued:
            joined = day + 3600 * index + 5
            store.append(call_id, "queue_joined", {"queue": "banking"}, t=joined)
            store.append(call_id, "ewt_announced", {"low_s": 60, "high_s": 180}, t=joined + 2)
            store.append(call_id, "agent_answered", {"agent": "a1"}, t=joined + 90)
        store.end_call(call_id, outcome=outcome)
    store.close()


async def test_supervisor_reads_filtered_analytics_and_csv(service, tokens, tmp_path: Path) -> None:
    store, secrets = tokens
    _calls(tmp_path / "calls.sqlite3")
    app = create_app(service, store)
    add_analytics_routes(app, tmp_path / "calls.sqlite3")
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/analytics?dialplan=finance", headers=bearer(secrets["supervisor"]))
        assert response.status == 200
        data = await response.json()
        assert data["calls"] == 2 and data["outcomes"] == {"contained": 1, "transferred": 1}
        assert data["containment_rate"] == 0.5
        assert data["hot_spots"] == [{"dialplan": "finance", "node": "menu", "nomatch": 2, "noinput": 0}]

        response = await client.get("/analytics?from=2026-12-07T00:30&to=2026-12-07T03:00",
                                    headers=bearer(secrets["admin"]))
        assert (await response.json())["calls"] == 2  # the calls at 01:00 and 02:00

        response = await client.get("/analytics.csv", headers=bearer(secrets["admin"]))
        assert response.status == 200 and response.content_type == "text/csv"
        assert "calls,total,3" in await response.text()

        response = await client.get("/analytics?queue=banking&bucket=hour&sl=100", headers=bearer(secrets["admin"]))
        data = await response.json()
        assert data["calls"] == 1 and data["outcomes"] == {"transferred": 1}  # the queue filters every section
        assert data["hot_spots"] == [{"dialplan": "finance", "node": "menu", "nomatch": 1, "noinput": 0}]
        assert data["service"]["series"] == [{"queue": "banking", "start": "2026-12-07T01:00Z", "offered": 1,
                                              "answered": 1, "asa_s": 90.0, "service_level": 1.0, "abandoned": 0}]
        assert data["ewt_honesty"][0]["within"] == 1  # 88 s after the announced 1-3 minutes
        response = await client.get("/analytics.csv?queue=banking", headers=bearer(secrets["admin"]))
        text = await response.text()
        assert "calls,total,1" in text and "ewt_honesty,banking/within,1" in text
        assert "service,banking/asa_s,90.0" in text and "service,banking/service_level,0.0" in text  # 90 s > 20 s
        assert "service_day,banking/2026-12-07T00:00Z/offered,1" in text
        for query, message in [("queue=no%20such", "queue must be a queue name"), ("bucket=week", "bucket must be"),
                               ("sl=soon", "sl must be a number"), ("sl=0", "between 1 and 3600")]:
            response = await client.get(f"/analytics?{query}", headers=bearer(secrets["admin"]))
            assert response.status == 400 and message in (await response.json())["error"], query

        response = await client.get("/analytics?from=yesterday", headers=bearer(secrets["admin"]))
        assert response.status == 400 and "ISO date" in (await response.json())["error"]
        assert (await client.get("/analytics", headers=bearer(secrets["a1"]))).status == 403
        assert (await client.get("/analytics")).status == 401


async def test_no_records_yet_is_an_empty_report(service, tokens, tmp_path: Path) -> None:
    store, secrets = tokens
    app = create_app(service, store)
    add_analytics_routes(app, tmp_path / "missing.sqlite3")
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/analytics", headers=bearer(secrets["admin"]))
        assert response.status == 200 and (await response.json())["calls"] == 0


async def test_metrics_include_the_bot_side(service, tokens, tmp_path: Path) -> None:
    from voicebot.records.journal import CallJournal

    store, secrets = tokens
    journal = CallJournal(None)
    journal.start("c1")
    journal.end("c1", outcome="completed")
    app = create_app(service, store)
    add_analytics_routes(app, tmp_path / "calls.sqlite3", metrics=journal.metrics)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/metrics", headers=bearer(secrets["admin"]))
        text = await response.text()
        assert response.status == 200, text
        assert 'voicebot_bot_calls_ended_total{how="contained"} 1' in text and "voicebot_queue" in text
