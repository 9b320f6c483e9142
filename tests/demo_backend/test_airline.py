"""Airline demo webhooks over HTTP, through the demo backend app (aiohttp test client on loopback)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from voicebot.demo_backend import build_app
from voicebot.demo_backend.airline import is_disrupted, status_text
from voicebot.demo_backend.data import new_store

ALICE = {"ani": "+15550100", "lang": "en-US"}
WANG = {"ani": "+8613800138000", "lang": "zh-CN"}


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(store=new_store()), host="127.0.0.1")) as test_client:
        yield test_client


async def call(client: TestClient, name: str, status: int = 200, **args: Any) -> dict[str, Any]:
    response = await client.post(f"/hooks/airline.{name}", json=args)
    assert response.status == status, await response.text()
    return await response.json()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_lookup_flags_the_callers_disrupted_flight_in_their_language(client: TestClient) -> None:
    alice = await call(client, "lookup", **ALICE)
    assert (alice["name"], alice["tier"]) == ("Alice", "gold")
    assert alice["disruption"] == {"pnr": "ABC123", "flight": "UA889", "destination": "Beijing",
                                   "date": "2026-11-25", "status_text": "has been cancelled",
                                   "option1": "UA851 on 2026-11-26 at 11:05", "option2": "UA857 on 2026-11-26 at 13:20"}
    wang = await call(client, "lookup", **WANG)
    assert wang["disruption"]["status_text"] == "延误约180分钟" and wang["disruption"]["destination"] == "北京"
    sam = await call(client, "lookup", ani="voicebot")
    assert sam["known"] is True and sam["disruption"] is None
    assert await call(client, "lookup", ani="+19999999") == {"known": False, "name": "", "tier": "",
                                                             "disruption": None}


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_flight_status_by_number_normalises_the_code(client: TestClient) -> None:
    status = await call(client, "flight_status", flight="ca 981", **ALICE)
    assert status == {"found": True, "flight": "CA981", "origin": "Beijing", "destination": "New York",
                      "date": "2026-11-25", "time": "13:00", "gate": "E12", "status": "on_time",
                      "status_text": "is on time", "disrupted": False}
    delayed = await call(client, "flight_status", flight="CA982", **WANG)
    assert (delayed["status_text"], delayed["disrupted"]) == ("延误约45分钟", False)
    assert await call(client, "flight_status", flight="ZZ1", **ALICE) == {"found": False}
    bad = await call(client, "flight_status", 400, flight="hello world", **ALICE)
    assert "CA981" in bad["error"]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_rebooking_moves_the_booking_and_ends_the_disruption(client: TestClient) -> None:
    before = await call(client, "booking", pnr="abc123", **ALICE)
    assert before["flight"] == "UA889" and before["disruption"]["flight"] == "UA889"
    rebooked = await call(client, "rebook", pnr="ABC123", option="second", **ALICE)
    assert rebooked["ok"] is True and rebooked["flight"] == "UA857" and rebooked["reference"].startswith("RB-")
    after = await call(client, "booking", pnr="ABC123", **ALICE)
    assert (after["flight"], after["disruption"]) == ("UA857", None)
    assert (await call(client, "lookup", **ALICE))["disruption"] is None
    again = await call(client, "rebook", pnr="ABC123", option="first", **ALICE)
    assert again["ok"] is False
    wrong = await call(client, "rebook", 400, pnr="XYZ789", option="third", **WANG)
    assert "first, second, refund" in wrong["error"]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_refund_and_unknown_booking(client: TestClient) -> None:
    refund = await call(client, "rebook", pnr="XYZ789", option="refund", **WANG)
    assert refund["ok"] is True and refund["reference"].startswith("RF-")
    assert await call(client, "booking", pnr="QQQ000", **ALICE) == {"found": False}
    bad = await call(client, "booking", 400, pnr="AB12", **ALICE)
    assert "three letters and three digits" in bad["error"]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_baggage_claim_needs_a_matching_tag_and_is_idempotent(client: TestClient) -> None:
    claim = await call(client, "baggage_claim", pnr="DEF456", bag_tag="345678", ani="voicebot")
    assert claim["found"] is True and claim["status"] == "located" and "New York" in claim["status_text"]
    again = await call(client, "baggage_claim", pnr="DEF456", bag_tag="345678", ani="voicebot")
    assert again["claim_id"] == claim["claim_id"]
    tracing = await call(client, "baggage_claim", pnr="ABC123", bag_tag="112233", **WANG)
    assert tracing["status"] == "tracing" and "追踪" in tracing["status_text"]
    assert await call(client, "baggage_claim", pnr="DEF456", bag_tag="999999", **ALICE) == {"found": False}
    await call(client, "baggage_claim", 400, pnr="DEF456", bag_tag="12", **ALICE)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_compensation_rules_by_region_and_language(client: TestClient) -> None:
    eu = await call(client, "compensation_rules", region="eu", **ALICE)
    assert "250 to 600 euros" in eu["summary"]
    china = await call(client, "compensation_rules", region="china", **WANG)
    assert "200元" in china["summary"]
    bad = await call(client, "compensation_rules", 400, region="mars", **ALICE)
    assert "eu, us, china, other" in bad["error"]
    failing = await call(client, "compensation_rules", 500, region="eu", ani="+15550199")
    assert failing["ok"] is False


def test_disruption_threshold_and_status_phrases() -> None:
    assert is_disrupted({"status": "cancelled", "delay_min": 0})
    assert is_disrupted({"status": "delayed", "delay_min": 120})
    assert not is_disrupted({"status": "delayed", "delay_min": 119})
    assert status_text({"status": "delayed", "delay_min": 30}, zh=False) == "is delayed by about 30 minutes"
    assert status_text({"status": "on_time", "delay_min": 0}, zh=True) == "计划准点"
