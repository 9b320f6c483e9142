"""Token changes made with `voicebot token create/revoke` while the server runs take effect at once: a new token
works on the next request, a revoked one is refused (REST) and its open agent WebSocket is closed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.integration.support import REPO, api_request, start_server, stop_server
from voicebot.api.tokens import TokenStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def token_cli(workdir: Path, *args: str) -> str:
    """`voicebot token --config <the server's YAML> ...` as an admin would run it; its stdout."""
    result = subprocess.run([sys.executable, "-m", "voicebot.cli", "token", "--config", str(workdir / "voicebot.yaml"),
                             *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
                            env={k: v for k, v in os.environ.items() if k != "VOICEBOT_TOKENS_FILE"})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


async def signed_in_socket(session: aiohttp.ClientSession, port: int, token: str) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(f"http://127.0.0.1:{port}/ws/agent")
    await ws.send_json({"type": "auth", "token": token})
    hello = await ws.receive_json(timeout=10)
    assert hello["type"] == "hello" and hello["agent"] == "a1"
    return ws


async def socket_closed_by_server(ws: aiohttp.ClientWebSocketResponse, within_s: float) -> int | None:
    """The close code once the server closes ``ws`` (other messages skipped), or None if still open after
    ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            message = await ws.receive(timeout=max(0.05, deadline - time.monotonic()))
        except TimeoutError:
            return None
        if message.type == aiohttp.WSMsgType.CLOSE:
            return int(message.data)
        if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
            return ws.close_code
    return None


def test_created_and_revoked_tokens_apply_without_restart(tmp_path: Path) -> None:
    store = TokenStore.load(tmp_path / "tokens.json")
    agent = store.create("agent", agent="a1")
    agent_id = agent.split("_")[1]
    server = start_server(tmp_path)
    try:
        port = server.wait_for("api listening")[0]["port"]
        assert api_request(port, "GET", "/agents/a1/state", agent)[0] == 200

        supervisor = token_cli(tmp_path, "create", "--role", "supervisor")
        assert api_request(port, "GET", "/queues", supervisor)[0] == 200  # new token: works at once

        async def revoke_while_connected() -> int | None:
            async with aiohttp.ClientSession() as session:
                ws = await signed_in_socket(session, port, agent)
                await asyncio.to_thread(token_cli, tmp_path, "revoke", agent_id)
                status = (await asyncio.to_thread(api_request, port, "GET", "/agents/a1/state", agent))[0]
                assert status == 401  # revoked: refused on the very next request
                code = await socket_closed_by_server(ws, within_s=5)
                await ws.close()
                return code

        assert asyncio.run(revoke_while_connected()) == 4401
        assert api_request(port, "GET", "/queues", supervisor)[0] == 200  # other tokens unaffected
    finally:
        stop_server(server)
    audit = (tmp_path / "audit" / "audit.jsonl").read_text()
    assert "token_revoked_disconnect" in audit
