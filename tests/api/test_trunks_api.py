"""GET /trunks and the trunk gauges of /metrics: each outbound trunk proxy's health as the OPTIONS checks see it."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.api.conftest import bearer
from voicebot.api.app import create_app
from voicebot.api.trunks import add_trunk_routes
from voicebot.sip.proxyhealth import TrunkProxies, TrunkRoutes

pytestmark = pytest.mark.asyncio


async def test_trunk_health_via_api_and_metrics(service, tokens, clock) -> None:  # type: ignore[no-untyped-def]
    store, secrets = tokens
    trunk = TrunkProxies("carrier", "carrier.example", ["sip:10.0.0.1", "sip:10.0.0.2"], down_after=1)
    app = create_app(service, store, clock=clock)
    add_trunk_routes(app, TrunkRoutes([trunk]))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        trunk.record("sip:10.0.0.1", True, "timeout", 5.0)
        response = await client.get("/trunks", headers=bearer(secrets["admin"]))
        assert response.status == 200
        body = await response.json()
        assert body["trunks"][0]["healthy"] == 1
        assert [(p["uri"], p["up"], p["last_result"]) for p in body["trunks"][0]["proxies"]] == [
            ("sip:10.0.0.1", False, "timeout"), ("sip:10.0.0.2", True, "")]
        metrics = await (await client.get("/metrics", headers=bearer(secrets["admin"]))).text()
        assert 'voicebot_trunk_proxy_up{trunk="carrier",proxy="sip:10.0.0.1"} 0' in metrics
        assert (await client.get("/trunks", headers=bearer(secrets["a1"]))).status == 403
        assert (await client.get("/trunks")).status == 401
