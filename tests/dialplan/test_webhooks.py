"""Webhook execution over real HTTP on loopback: success, timeout, 5xx with retries, 4xx, malformed JSON."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from voicebot.dialplan.actions import Webhook
from voicebot.dialplan.events import WebhookResult
from voicebot.dialplan.webhooks import perform


class _Handler(BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._reply(200, json.dumps({"path": self.path}).encode())

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        path = self.path
        self.hits[path] = self.hits.get(path, 0) + 1
        if path == "/echo":
            self._reply(200, json.dumps({"got": body, "auth": self.headers.get("X-Key")}).encode())
        elif path == "/slow":
            time.sleep(0.6)
            self._reply(200, b"{}")
        elif path == "/flaky":
            self._reply(503 if self.hits[path] < 3 else 200, b'{"ok": true}')
        elif path == "/missing":
            self._reply(404, b"{}")
        elif path == "/bad":
            self._reply(200, b"{not json")
        elif path == "/empty":
            self._reply(200, b"")
        else:
            self._reply(500, b"{}")


@pytest.fixture()
def server() -> Iterator[str]:
    _Handler.hits = {}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def run(action: Webhook, **kw: object) -> WebhookResult:
    async def go() -> WebhookResult:
        async with httpx.AsyncClient() as client:
            return await perform(action, client, **kw)  # type: ignore[arg-type]

    return asyncio.run(go())


def hook(url: str | None, *, name: str | None = None, retries: int = 0, timeout_s: float = 2.0,
         method: str = "POST") -> Webhook:
    return Webhook(name, url, method, {"account": "123", "n": 2}, {"X-Key": "k"}, timeout_s, retries)


@pytest.mark.timeout(30)
def test_success_posts_json_args_and_headers(server: str) -> None:
    assert run(hook(f"{server}/echo")) == WebhookResult(True, {"got": {"account": "123", "n": 2}, "auth": "k"})


@pytest.mark.timeout(30)
def test_named_webhook_resolves_through_endpoints_and_get_uses_query(server: str) -> None:
    result = run(hook(None, name="crm.lookup", method="GET"), endpoints={"crm.lookup": f"{server}/lookup"})
    assert result.ok and result.data == {"path": "/lookup?account=123&n=2"}
    assert run(hook(None, name="nope")) == WebhookResult(False, None, "no URL configured for webhook 'nope'")


@pytest.mark.timeout(30)
def test_timeout_is_an_error_after_retries(server: str) -> None:
    assert run(hook(f"{server}/slow", timeout_s=0.2, retries=1)) == WebhookResult(False, None, "timeout after 0.2 s")
    assert _Handler.hits["/slow"] == 2


@pytest.mark.timeout(30)
def test_5xx_is_retried_until_success(server: str) -> None:
    assert run(hook(f"{server}/flaky", retries=2)) == WebhookResult(True, {"ok": True})
    assert _Handler.hits["/flaky"] == 3


@pytest.mark.timeout(30)
def test_500_without_retries_4xx_and_malformed_json(server: str) -> None:
    assert run(hook(f"{server}/boom")) == WebhookResult(False, None, "HTTP 500")
    assert run(hook(f"{server}/missing", retries=3)) == WebhookResult(False, None, "HTTP 404")
    assert _Handler.hits["/missing"] == 1
    assert run(hook(f"{server}/bad")) == WebhookResult(False, None, "malformed JSON in the response")
    assert run(hook(f"{server}/empty")) == WebhookResult(True, {})


@pytest.mark.timeout(30)
def test_connection_refused_and_bad_scheme() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert run(hook(f"http://127.0.0.1:{port}/x")) == WebhookResult(False, None, "connection failed: ConnectError")
    assert run(hook("ftp://x/y")).error == "webhook URL must be http(s): 'ftp://x/y'"
