"""Webhook destinations and secrets: validate refuses metadata/loopback targets and literal secrets; at run time
the egress policy holds, secrets come from the environment and are never handed back (spoken or logged)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from voicebot.config import load_server_config
from voicebot.dialplan.actions import Webhook
from voicebot.dialplan.cli import main
from voicebot.dialplan.events import WebhookResult
from voicebot.dialplan.webhook_policy import literal_secret
from voicebot.runtime import Runtime
from voicebot.speech.prompts import PromptCache

LEAKY = """dialplan: leaky
start: a
nodes:
  a:
    webhook:
      url: "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
      headers:
        Authorization: "Bearer sk_live_51HqLyjWDarjtT1zdp7dc"
      on_error: b
    goto: b
  b:
    say: "Goodbye."
    hangup: true
"""


def test_validate_rejects_metadata_destination_and_literal_secret(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "leaky.yaml"
    plan.write_text(LEAKY)
    assert main(["validate", "--no-nlu", str(plan)]) == 1
    out = capsys.readouterr().out
    assert "leaky.yaml:8:9: nodes.a.webhook.headers.Authorization: header 'Authorization' holds a literal" in out
    assert "leaky.yaml:6:7: nodes.a.webhook.url: webhook destination refused: 169.254.169.254" in out
    assert "sk_live_51HqLyjWDarjtT1zdp7dc" not in out  # the error names the header, never the value
    fixed = LEAKY.replace("169.254.169.254", "203.0.113.10").replace("sk_live_51HqLyjWDarjtT1zdp7dc",
                                                                     "${BANK_API_TOKEN}")
    plan.write_text(fixed)
    assert main(["validate", "--no-nlu", str(plan)]) == 0


@pytest.mark.parametrize(("name", "value", "literal"), [
    ("Authorization", "Bearer ${TOKEN}", False), ("X-Api-Key", "${KEY}", False), ("X-Request", "abc", False),
    ("Authorization", "Bearer abc123def456", True), ("X-Api-Key", "k", True),
    ("X-Note", "sk_live_51HqLyjWDarjtT1zdp7dc", True), ("X-Trace", "{{ call.id }}", False),
])
def test_literal_secret_rules(name: str, value: str, literal: bool) -> None:
    assert (literal_secret(name, value) is not None) is literal


class _Echo(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        auth = self.headers.get("Authorization", "")
        self.seen.append(auth)
        body = json.dumps({"echo": auth, "say": f"your key is {auth}", "nested": [{"h": auth}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def echo_url() -> Iterator[str]:
    _Echo.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    finally:
        httpd.shutdown()
        httpd.server_close()


def call_webhook(tmp_path: Path, config_text: str, action: Webhook) -> WebhookResult:
    config_file = tmp_path / "voicebot.yaml"
    config_file.write_text(config_text)
    runtime = Runtime(load_server_config(config_file), PromptCache(tmp_path / "cache"))

    async def go() -> WebhookResult:
        runtime.http = httpx.AsyncClient()
        try:
            return await runtime.webhook(action)
        finally:
            await runtime.http.aclose()

    return asyncio.run(go())


def hook(url: str, headers: dict[str, str] | None = None) -> Webhook:
    return Webhook(None, url, "POST", {"a": 1}, headers or {}, 2.0, 0)


def test_env_secret_is_sent_but_never_handed_back(tmp_path: Path, echo_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VB_TEST_WEBHOOK_TOKEN", "sk_live_from_environment_42")
    action = hook(echo_url, {"Authorization": "Bearer ${VB_TEST_WEBHOOK_TOKEN}"})
    assert "VB_TEST" not in repr(action) and "Authorization" not in repr(action)  # headers stay out of logs
    result = call_webhook(tmp_path, "webhook_egress: {allow: [127.0.0.1/32]}\n", action)
    assert _Echo.seen == ["Bearer sk_live_from_environment_42"]  # the backend got the real token
    assert result.ok, result.error
    assert result.data == {"echo": "Bearer ****", "say": "your key is Bearer ****", "nested": [{"h": "Bearer ****"}]}


def test_missing_secret_variable_fails_the_webhook_without_sending(tmp_path: Path, echo_url: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VB_TEST_WEBHOOK_TOKEN", raising=False)
    result = call_webhook(tmp_path, "webhook_egress: {allow: [127.0.0.1/32]}\n",
                          hook(echo_url, {"Authorization": "Bearer ${VB_TEST_WEBHOOK_TOKEN}"}))
    assert not result.ok and "VB_TEST_WEBHOOK_TOKEN is not set" in (result.error or "")
    assert _Echo.seen == []


def test_egress_policy_refuses_loopback_and_metadata_by_default(tmp_path: Path, echo_url: str) -> None:
    result = call_webhook(tmp_path, "log: {level: INFO}\n", hook(echo_url))
    assert not result.ok and "not allowed" in (result.error or "") and "127.0.0.1" in (result.error or "")
    assert _Echo.seen == []  # refused before connecting
    result = call_webhook(tmp_path, "webhook_egress: {allow: [127.0.0.1/32]}\n",
                          hook("http://169.254.169.254/latest/meta-data/"))
    assert not result.ok and "169.254.169.254" in (result.error or "")
    result = call_webhook(tmp_path, "log: {level: INFO}\n", hook("http://localhost:9/x"))
    assert not result.ok and "not allowed" in (result.error or "")


def test_config_refuses_a_named_webhook_to_the_metadata_address(tmp_path: Path) -> None:
    config_file = tmp_path / "voicebot.yaml"
    config_file.write_text("webhooks: {steal: 'http://169.254.169.254/latest/meta-data/'}\n")
    with pytest.raises(Exception, match="webhook 'steal' destination refused"):
        load_server_config(config_file)
