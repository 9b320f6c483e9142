"""Forward a browser agent's answer to the node that holds the caller (signalling only; media goes browser <-> it).

    url = advertised_url("0.0.0.0", 8080, public_host="10.0.0.5")   # what this node publishes in its heartbeat
    forwarder = AnswerForwarder(lookup=registry.node_api_url, node="node-a")
    status, body = await forwarder.forward("node-b", "a1", bearer_token, offer_json)

Only URLs from the shared node registry (Redis heartbeats) are used, never a URL from the request (no SSRF). The
agent's own bearer token goes along, so the owning node authorises the answer exactly as if the page had called
it. A node that is unknown, advertises no URL, is unreachable or answers with garbage gives 502 with the reason,
within the timeout: the page is never left hanging.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

__all__ = ["FORWARDED_HEADER", "AnswerForwarder", "ForwardError", "advertised_url", "check_advertise_url"]

FORWARDED_HEADER = "X-Voicebot-Forwarded-By"  # set on forwarded answers: the receiving node never forwards again
Lookup = Callable[[str], Awaitable[str | None]]


class ForwardError(Exception):
    """The answer could not be forwarded (502 to the page); the message says why."""


def check_advertise_url(value: str) -> str:
    """An http(s) base URL with a host and no credentials, query or fragment; returned without a trailing '/'."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL with a host, e.g. http://10.0.0.5:8080")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{value!r}: no credentials, query or fragment in the advertised URL")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"{value!r}: {exc}") from None
    if parts.hostname and _is_wildcard(parts.hostname):
        raise ValueError(f"{value!r}: a wildcard address cannot be reached by other nodes; give this node's address")
    return value.rstrip("/")


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def advertised_url(host: str, port: int, public_host: str | None = None) -> str:
    """The default advertised URL: the API's bound address (or ``public_host`` when it is bound to a wildcard)."""
    if _is_wildcard(host) and public_host:
        host = public_host
    elif _is_wildcard(host):
        host = "127.0.0.1" if ipaddress.ip_address(host).version == 4 else "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class AnswerForwarder:
    """POSTs a page's answer to the owning node's /agents/{agent}/answer; returns that node's (status, JSON body)."""

    def __init__(self, lookup: Lookup, node: str, *, timeout_s: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.lookup = lookup
        self.node = node
        self.timeout_s = timeout_s
        self._transport = transport

    async def forward(self, owner: str, agent_id: str, token: str, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            base = await self.lookup(owner)
        except Exception as exc:  # noqa: BLE001 - the registry (Redis) is down: the page gets a reason, not a hang
            raise ForwardError(f"cannot look up node {owner!r}: {exc or type(exc).__name__}") from None
        if not base:
            raise ForwardError(f"node {owner!r} holds this call but is not live or advertises no API URL")
        url = f"{base}/agents/{quote(agent_id, safe='')}/answer"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                   FORWARDED_HEADER: self.node}
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, transport=self._transport,
                                         follow_redirects=False, trust_env=False) as client:
                response = await client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise ForwardError(f"node {owner!r} ({base}) did not answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise ForwardError(f"node {owner!r} ({base}) is unreachable: {exc or type(exc).__name__}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise ForwardError(f"node {owner!r} ({base}) answered HTTP {response.status_code} without a JSON object")
        return response.status_code, payload
