"""The demo backend framework over HTTP: discovery, routing, errors, forced failures, per-instance state."""

from __future__ import annotations

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer

from voicebot.demo_backend import INDUSTRY_MODULES, load_handlers, start_demo_backend
from voicebot.demo_backend.app import build_app


def test_modules_are_discovered_and_names_are_prefixed() -> None:
    handlers = load_handlers()
    assert {"demo.lookup", "demo.verify", "demo.pay", "finance.verify", "ecommerce.lookup"} <= set(handlers)
    assert all(name.split(".")[0] in INDUSTRY_MODULES for name in handlers)


def test_missing_industry_module_is_skipped() -> None:
    assert set(load_handlers(("demo", "no_such_industry"))) == {"demo.lookup", "demo.verify", "demo.pay"}


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_unknown_hook_is_404_json(client: TestClient) -> None:
    response = await client.post("/hooks/finance.nothing", json={})
    assert response.status == 404
    body = await response.json()
    assert body["ok"] is False and "finance.nothing" in body["error"] and "finance.verify" in body["error"]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"'])
async def test_bad_body_is_400(client: TestClient, raw: bytes) -> None:
    response = await client.post("/hooks/demo.lookup", data=raw, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert "JSON" in (await response.json())["error"]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_missing_argument_is_400_naming_it(client: TestClient) -> None:
    response = await client.post("/hooks/finance.verify", json={"ani": "+15550100", "id_last4": "1234"})
    assert response.status == 400
    assert "pin" in (await response.json())["error"]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_failing_caller_forces_500_on_every_customer_hook(client: TestClient) -> None:
    for hook in ("demo.lookup", "finance.lookup", "finance.balance", "ecommerce.lookup"):
        response = await client.post(f"/hooks/{hook}", json={"ani": "+15550199"})
        assert response.status == 500, hook
        assert "forced failure" in (await response.json())["error"]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_get_reads_the_query_and_index_lists_hooks(client: TestClient) -> None:
    response = await client.get("/hooks/demo.lookup", params={"ani": "+15550100"})
    assert response.status == 200 and (await response.json())["name"] == "Alice"
    listing = await (await client.get("/hooks")).json()
    assert "ecommerce.complaint" in listing["hooks"]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_handler_crash_and_non_dict_are_500() -> None:
    def crash(args: dict) -> dict:
        raise RuntimeError("boom")

    async def not_a_dict(args: dict) -> dict:
        return [1]  # type: ignore[return-value]

    app = build_app({"demo.crash": crash, "demo.list": not_a_dict})
    async with TestClient(TestServer(app)) as test_client:
        assert (await test_client.post("/hooks/demo.crash", json={})).status == 500
        response = await test_client.post("/hooks/demo.list", json={})
        assert response.status == 500 and "no JSON object" in (await response.json())["error"]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_demo_hooks_serve_demo_yaml(client: TestClient) -> None:
    verified = await (await client.post("/hooks/demo.verify", json={"account": "123456", "pin": "1234"})).json()
    assert verified == {"verified": True, "name": "Ann", "balance": 12.5}
    wrong = await (await client.post("/hooks/demo.verify", json={"account": "123456", "pin": "9999"})).json()
    assert wrong == {"verified": False}
    paid = await (await client.post("/hooks/demo.pay", json={"account": "123456", "amount": 20})).json()
    assert paid["amount"] == 20.0 and paid["confirmation"].startswith("AC-")
    negative = await client.post("/hooks/demo.pay", json={"account": "123456", "amount": -5})
    assert negative.status == 400


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_start_demo_backend_serves_endpoints_on_loopback_and_instances_are_isolated() -> None:
    first = await start_demo_backend()
    second = await start_demo_backend()
    try:
        endpoints = first.endpoints()
        assert endpoints["finance.block_card"] == f"{first.base_url}/hooks/finance.block_card"
        assert first.base_url.startswith("http://127.0.0.1:") and first.base_url != second.base_url
        async with httpx.AsyncClient() as http:
            blocked = (await http.post(endpoints["finance.block_card"], json={"ani": "+15550100"})).json()
            assert blocked["blocked"] is True and blocked["already_blocked"] is False
            again = (await http.post(endpoints["finance.block_card"], json={"ani": "+15550100"})).json()
            assert again["already_blocked"] is True
            other = (await http.post(second.endpoints()["finance.block_card"], json={"ani": "+15550100"})).json()
            assert other["already_blocked"] is False
        assert [case["kind"] for case in first.store.cases] == ["card_block", "card_block"]
    finally:
        await first.close()
        await second.close()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.post(endpoints["finance.lookup"], json={"ani": "+15550100"})
