"""Anonymous connections that hold server resources are bounded on a running server: agent WebSockets waiting to
sign in are capped per address (429 before the upgrade, the slot is free again once one signs in or leaves), and
the public /webrtc/offer takes only JSON (a cross-site form post cannot start browser calls)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.integration.support import start_server, stop_server
from voicebot.api.tokens import TokenStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_unauthenticated_websockets_are_capped_per_address(tmp_path: Path) -> None:
    agent = TokenStore.load(tmp_path / "tokens.json").create("agent", agent="a1")
    server = start_server(tmp_path)
    try:
        port = server.wait_for("api listening")[0]["port"]
        url = f"http://127.0.0.1:{port}/ws/agent"

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                waiting = [await session.ws_connect(url) for _ in range(20)]  # connected, never signing in
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(url)
                assert refused.value.status == 429
                await waiting[0].send_json({"type": "auth", "token": agent})  # signing in frees its slot
                assert (await waiting[0].receive_json(timeout=10))["type"] == "hello"
                extra = await session.ws_connect(url)
                await extra.send_json({"type": "auth", "token": agent})
                assert (await extra.receive_json(timeout=10))["type"] == "hello"
                for ws in [*waiting, extra]:
                    await ws.close()

        asyncio.run(scenario())

        form = urllib.request.Request(f"http://127.0.0.1:{port}/webrtc/offer", method="POST", data=b"{}",
                                      headers={"Content-Type": "text/plain"})
        with pytest.raises(urllib.error.HTTPError) as not_json:
            urllib.request.urlopen(form, timeout=10)
        assert not_json.value.code == 415
    finally:
        stop_server(server)
