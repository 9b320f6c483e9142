"""ecommerce.* demo webhooks over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]


async def _post(client: TestClient, hook: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = await client.post(f"/hooks/{hook}", json=body)
    assert response.status == status, await response.text()
    return await response.json()


async def test_lookup_gives_the_latest_order(client: TestClient) -> None:
    alice = await _post(client, "ecommerce.lookup", {"ani": "+15550100"})
    assert alice["has_order"] and alice["order_count"] == 2
    assert alice["order"]["order_id"] == "A12-3456" and alice["order"]["interceptable"] is True
    assert "refund" not in alice["order"] and alice["order"]["refund_status"] == "none"
    assert (await _post(client, "ecommerce.lookup", {"ani": "+15550102"}))["has_order"] is False
    assert (await _post(client, "ecommerce.lookup", {"ani": "+15559999"}))["known"] is False


@pytest.mark.parametrize("spoken", ["A12-3001", "a12 3001", "A123001"])
async def test_order_by_number_in_any_spelling(client: TestClient, spoken: str) -> None:
    result = await _post(client, "ecommerce.order", {"order_id": spoken})
    assert result["found"] and result["order"]["item"] == "running shoes"


async def test_unknown_order_and_missing_number(client: TestClient) -> None:
    assert (await _post(client, "ecommerce.order", {"order_id": "Z9-0000"}))["found"] is False
    assert "order_id" in (await _post(client, "ecommerce.refund", {}, 400))["error"]


async def test_refund_states(client: TestClient) -> None:
    processing = await _post(client, "ecommerce.refund", {"order_id": "A12-3001"})
    assert processing == {"found": True, "has_refund": True, "refund_status": "processing", "amount": 120.0,
                          "expected": "2026-11-30"}
    assert (await _post(client, "ecommerce.refund", {"order_id": "A12-3456"}))["has_refund"] is False


@pytest.mark.parametrize(("order_id", "returnable", "special"), [
    ("A12-3456", True, None), ("B7-100200", False, "custom_made"), ("C3-5500", False, "perishable")])
async def test_return_policy_special_items(client: TestClient, order_id: str, returnable: bool,
                                           special: str | None) -> None:
    result = await _post(client, "ecommerce.return_policy", {"order_id": order_id})
    assert result["returnable"] is returnable and result["special"] == special and result["window_days"] == 30
    assert bool(result["reason"]) is (not returnable)


async def test_interception_only_before_the_last_mile(client: TestClient) -> None:
    stopped = await _post(client, "ecommerce.intercept", {"order_id": "A12-3456"})
    assert stopped["intercepted"] is True and stopped["reference"].startswith("INT-")
    assert (await _post(client, "ecommerce.order", {"order_id": "A12-3456"}))["order"]["status"] == "cancelled"
    twice = await _post(client, "ecommerce.intercept", {"order_id": "A12-3456"})
    assert twice == {"found": True, "intercepted": False, "reason": "cancelled"}
    late = await _post(client, "ecommerce.intercept", {"order_id": "C3-5500"})
    assert late["intercepted"] is False and late["reason"] == "out_for_delivery"


async def test_complaint_creates_a_case_with_the_right_skill(client: TestClient) -> None:
    logistics = await _post(client, "ecommerce.complaint", {"ani": "+15550100", "order_id": "A12-3456",
                                                            "category": "logistics", "details": "late"})
    assert logistics["skill"] == "logistics" and logistics["case_id"].startswith("CASE-")
    seller = await _post(client, "ecommerce.complaint", {"ani": "+15559999", "category": "seller"})
    assert seller["skill"] == "seller_support" and seller["case_id"] != logistics["case_id"]
    bad = await _post(client, "ecommerce.complaint", {"ani": "+15550100", "category": "weather"}, 400)
    assert "seller" in bad["error"] and "logistics" in bad["error"]
