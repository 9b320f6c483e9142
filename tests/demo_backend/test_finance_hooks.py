"""finance.* demo webhooks over HTTP."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from voicebot.demo_backend.app import build_app
from voicebot.demo_backend.data import new_store

REPAYMENT_DAY = dt.date(2026, 11, 25)  # the 25th: card repayment day

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]


async def _post(client: TestClient, hook: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = await client.post(f"/hooks/{hook}", json=body)
    assert response.status == status, await response.text()
    return await response.json()


async def test_lookup_known_elderly_and_unknown(client: TestClient) -> None:
    alice = await _post(client, "finance.lookup", {"ani": "+15550100"})
    assert alice["known"] and alice["first_name"] == "Alice" and not alice["elderly"] and not alice["surge"]
    assert (await _post(client, "finance.lookup", {"ani": "+15550101"}))["elderly"] is True
    assert (await _post(client, "finance.lookup", {"ani": "voicebot"}))["name"] == "Sam Lee"
    assert (await _post(client, "finance.lookup", {"ani": "+15559999"}))["known"] is False


async def test_surge_on_repayment_days_only() -> None:
    async with TestClient(TestServer(build_app(store=new_store(today=REPAYMENT_DAY)))) as surge_client:
        assert (await _post(surge_client, "finance.lookup", {"ani": "+15550100"}))["surge"] is True
        assert (await _post(surge_client, "finance.repayment", {"ani": "+15550100"}))["surge"] is True


@pytest.mark.parametrize(("body", "verified"), [
    ({"id_last4": "1234", "pin": "2468"}, True),
    ({"id_last4": "1234", "dob": "1985-04-12"}, True),
    ({"id_last4": "1234", "dob": "19850412"}, True),
    ({"id_last4": "1234", "pin": "0000"}, False),
    ({"id_last4": "9999", "pin": "2468"}, False),
    ({"id_last4": "1234", "dob": "1985-04-13"}, False),
])
async def test_verify_two_factors(client: TestClient, body: dict[str, str], verified: bool) -> None:
    result = await _post(client, "finance.verify", {"ani": "+15550100", **body})
    assert result["verified"] is verified
    assert result["method"] == ("pin" if "pin" in body else "dob")


async def test_verify_rejects_a_bad_date_and_unknown_callers_fail(client: TestClient) -> None:
    bad = await _post(client, "finance.verify", {"ani": "+15550100", "id_last4": "1234", "dob": "April"}, 400)
    assert "dob" in bad["error"]
    unknown = await _post(client, "finance.verify", {"ani": "+15559999", "id_last4": "1234", "pin": "2468"})
    assert unknown["verified"] is False


async def test_balance_with_recent_transactions(client: TestClient) -> None:
    result = await _post(client, "finance.balance", {"ani": "+15550100"})
    assert result["balance"] == 2543.18 and result["currency"] == "USD"
    assert result["last_description"] == "Grocery Mart" and len(result["transactions"]) == 3
    assert (await _post(client, "finance.balance", {"ani": "+15550102"}))["last_description"] == ""
    assert "unknown caller" in (await _post(client, "finance.balance", {"ani": "+15559999"}, 400))["error"]
    assert "ani" in (await _post(client, "finance.balance", {}, 400))["error"]


async def test_block_card_records_a_case(client: TestClient) -> None:
    result = await _post(client, "finance.block_card", {"ani": "+15550100"})
    assert result == {"blocked": True, "already_blocked": False, "card_last4": "4567",
                      "reference": "BLK-1001", "replacement_days": 5}
    assert (await _post(client, "finance.block_card", {"ani": "+15550102"}))["already_blocked"] is True
    missing = await _post(client, "finance.block_card", {"ani": "+15550100", "card_last4": "0000"})
    assert missing == {"blocked": False, "reason": "no_such_card"}


async def test_repayment_and_loan(client: TestClient) -> None:
    due = await _post(client, "finance.repayment", {"ani": "+8613800138000"})
    assert due["has_statement"] and due["minimum_due"] == 356.0 and due["currency"] == "CNY"
    assert (await _post(client, "finance.repayment", {"ani": "+15550101"}))["has_statement"] is False
    loan = await _post(client, "finance.loan", {"ani": "+15550100"})
    assert loan["loan_id"] == "L-7781" and loan["extension_eligible"] is True
    assert (await _post(client, "finance.loan", {"ani": "+15550102"}))["has_loan"] is False
