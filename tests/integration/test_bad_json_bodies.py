"""Hostile JSON against a running server: deep nesting, bad UTF-8 and oversized bodies get a 400/413 with a clear
message (never a 500 with a traceback), also on the unauthenticated /login and /webrtc/offer and the agent
WebSocket."""

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

DEEP = b'{"token": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"  # < 32 KiB, far beyond Python's recursion limit


def post(port: int, path: str, body: bytes, token: str | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_deep_and_malformed_json_is_a_clear_400(tmp_path: Path) -> None:
    agent = TokenStore.load(tmp_path / "tokens.json").create("agent", agent="a1")
    server = start_server(tmp_path)
    try:
        port = server.wait_for("api listening")[0]["port"]
        for path, token in (("/login", None), ("/webrtc/offer", None), ("/agents/a1/state", agent),
                            ("/agents/a1/answer", agent)):
            status, text = post(port, path, DEEP, token)
            assert status == 400 and "nested deeper than 32 levels" in text, (path, status, text[:300])
        status, text = post(port, "/webrtc/offer", b'{"type": "offer", "sdp": "v=0\xff\xfe"}')
        assert status == 400 and "UTF-8" in text, text
        assert post(port, "/login", b'{"token": "' + b"x" * 70_000 + b'"}')[0] == 413  # over client_max_size

        async def deep_websocket_message() -> tuple[int, str]:
            async with aiohttp.ClientSession() as session, session.ws_connect(
                    f"http://127.0.0.1:{port}/ws/agent", max_msg_size=0) as ws:
                await ws.send_str('{"type": "auth", "token": ' + "[" * 7000 + "]" * 7000 + "}")  # < 16 KiB
                message = await ws.receive(timeout=10)
                return message.type, message.data

        kind, code = asyncio.run(deep_websocket_message())
        assert kind == aiohttp.WSMsgType.CLOSE and code == 4401
        assert post(port, "/login", b'{"token": "' + agent.encode() + b'"}')[0] == 200  # server still fine
    finally:
        stop_server(server)
    errors = [line for line in server.lines if "Traceback" in line or "Error handling request" in line]
    assert not errors, errors[:3]
