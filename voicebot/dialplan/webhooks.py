"""Perform a Webhook action over HTTP (httpx) and turn the outcome into a WebhookResult event.

The call session runs this; the interpreter only emits the action. Timeouts, connection errors and 5xx answers
are retried `retries` times; 4xx answers and malformed JSON are not. Every failure becomes
`WebhookResult(ok=False, error=...)`, which the dialplan routes through `on_error`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from voicebot.dialplan.actions import Webhook
from voicebot.dialplan.events import WebhookResult

__all__ = ["perform", "resolve_url"]


def resolve_url(action: Webhook, endpoints: Mapping[str, str]) -> str | None:
    """The URL to call: the action's own, or the one configured for its name."""
    if action.url:
        return action.url
    return endpoints.get(action.name or "")


async def perform(
    action: Webhook, client: httpx.AsyncClient, *, endpoints: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> WebhookResult:
    """Call the webhook; returns ok with the response JSON, or not ok with a short error text. ``headers``
    (secrets expanded by the caller) replace the action's own."""
    url = resolve_url(action, endpoints or {})
    if url is None:
        return WebhookResult(False, None, f"no URL configured for webhook {action.name!r}")
    if not url.startswith(("http://", "https://")):
        return WebhookResult(False, None, f"webhook URL must be http(s): {url!r}")
    request: dict[str, Any] = {"headers": dict(action.headers if headers is None else headers),
                                  "timeout": action.timeout_s}
    if action.method == "GET":
        request["params"] = {k: v if isinstance(v, (str, int, float)) else json.dumps(v) for k, v in action.args.items()}
    else:
        request["json"] = action.args
    error = "no attempt made"
    for _attempt in range(action.retries + 1):
        try:
            response = await client.request(action.method, url, **request)
        except httpx.TimeoutException:
            error = f"timeout after {action.timeout_s:g} s"
            continue
        except httpx.HTTPError as exc:
            error = f"connection failed: {type(exc).__name__}"
            continue
        if response.status_code >= 500:
            error = f"HTTP {response.status_code}"
            continue
        if response.status_code >= 400:
            return WebhookResult(False, None, f"HTTP {response.status_code}")
        if not response.content.strip():
            return WebhookResult(True, {}, None)
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return WebhookResult(False, None, "malformed JSON in the response")
        return WebhookResult(True, data, None)
    return WebhookResult(False, None, error)
