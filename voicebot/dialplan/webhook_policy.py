"""Webhook safety: where webhooks may go (egress allowlist) and how their secrets are written and kept.

* Secrets are never literal in a dialplan: header values name environment variables, ``"Bearer ${BANK_TOKEN}"``,
  expanded only when the request is sent (:func:`expand_env`), so the token is in no dialplan state, template
  context, log line or action repr. Whatever a backend echoes back has those values masked (:func:`mask`), so a
  secret can never be spoken to a caller or logged.
* Destinations: loopback, link-local (cloud metadata 169.254.169.254), unspecified and multicast addresses are
  refused unless the config opens a narrower network (:class:`WebhookEgress`); names are resolved and every address
  is checked before the request.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_SENSITIVE_HEADER = re.compile(r"authori[sz]ation|token|secret|api[-_]?key|passw|cookie|signature|credential", re.IGNORECASE)
_SCHEMES_ONLY = {"", "bearer", "basic", "token", "apikey", "digest"}
_SECRET_LOOKING = re.compile(
    r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{6,}|\bgh[pousr]_[A-Za-z0-9]{20,}|\bAKIA[0-9A-Z]{16}\b"
    r"|\bxox[abpr]-[A-Za-z0-9-]{10,}|\b(?:Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,}")
MASK = "****"

DEFAULT_DENY: tuple[str, ...] = (
    "127.0.0.0/8", "::1/128",              # this node's own services (API, Redis, ...)
    "169.254.0.0/16", "fe80::/10",         # link-local: cloud metadata (169.254.169.254)
    "fd00:ec2::254/128", "100.100.100.200/32",  # AWS IPv6 / Alibaba metadata
    "0.0.0.0/8", "::/128", "224.0.0.0/4", "ff00::/8", "255.255.255.255/32",
)
_METADATA_NAMES = frozenset({"localhost", "metadata", "metadata.google.internal", "instance-data",
                             "instance-data.ec2.internal"})


class WebhookSecretMissing(LookupError):
    """A header names an environment variable that is not set."""


def literal_secret(name: str, value: str) -> str | None:
    """Why the header ``name: value`` holds a literal secret (None when it does not)."""
    rest = _TEMPLATE.sub("", ENV_REFERENCE.sub("", value)).strip()
    if _SENSITIVE_HEADER.search(name) and rest.lower() not in _SCHEMES_ONLY:
        return f"header {name!r} holds a literal value"
    if _SECRET_LOOKING.search(rest):
        return f"header {name!r} holds what looks like a secret"
    return None


def expand_env(headers: Mapping[str, str], environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Headers with ``${NAME}`` replaced from ``environ``, and the secret values used (for :func:`mask`)."""
    used: list[str] = []

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        value = environ.get(name)
        if not value:
            raise WebhookSecretMissing(f"environment variable {name} is not set")
        used.append(value)
        return value

    expanded = {key: ENV_REFERENCE.sub(value_of, value) for key, value in headers.items()}
    return expanded, used


def mask(data: Any, secrets: Iterable[str]) -> Any:
    """``data`` with every occurrence of the secrets replaced by ``****`` (nested lists and mappings walked)."""
    secrets = [s for s in secrets if len(s) >= 4]
    if not secrets:
        return data
    if isinstance(data, str):
        for secret in secrets:
            data = data.replace(secret, MASK)
        return data
    if isinstance(data, Mapping):
        return {mask(k, secrets): mask(v, secrets) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [mask(item, secrets) for item in data]
    return data


def _networks(values: Iterable[str | IpNetwork]) -> list[IpNetwork]:
    return [v if not isinstance(v, str) else ipaddress.ip_network(v, strict=False) for v in values]


class WebhookEgress:
    """Which addresses webhooks may reach: in an ``allow`` network and not in a ``deny`` one, unless an allow
    network more specific than the deny match opens it (``allow: [127.0.0.1/32]`` for a backend on this host)."""

    def __init__(self, allow: Iterable[str | IpNetwork] = ("0.0.0.0/0", "::/0"),
                 deny: Iterable[str | IpNetwork] = DEFAULT_DENY) -> None:
        self.allow = _networks(allow)
        self.deny = _networks(deny)

    def refuses_address(self, address: str) -> str | None:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0].strip("[]"))
        except ValueError:
            return f"{address!r} is not an IP address"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        allowed = [n for n in self.allow if n.version == ip.version and ip in n]
        if not allowed:
            return f"{ip} is outside the webhook egress allowlist"
        denied = [n for n in self.deny if n.version == ip.version and ip in n]
        if denied and max(n.prefixlen for n in denied) >= max(n.prefixlen for n in allowed):
            return f"{ip} is in a denied network ({denied[0]}): loopback, link-local/metadata or reserved"
        return None

    def refuses_url_statically(self, url: str) -> str | None:
        """Judged without DNS: a literal address or a well-known local/metadata name (validation time)."""
        host = urlsplit(url).hostname
        if host is None or "{{" in url.split("//", 1)[-1].split("/", 1)[0]:
            return None  # no host yet or a templated one: checked when called
        if host.lower().rstrip(".") in _METADATA_NAMES:
            return self.refuses_address("127.0.0.1") if host.lower() == "localhost" else \
                f"{host} is a cloud metadata name"
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
        return self.refuses_address(host)

    async def refuses_url(self, url: str) -> str | None:
        """Why ``url`` may not be called (every address its host resolves to is checked), None if it may."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"webhook URL must be http(s) with a host: {url!r}"
        static = self.refuses_url_statically(url)
        if static is not None:
            return static
        import asyncio  # the one I/O here: this module is imported by the (pure) dialplan loader
        import socket

        try:
            infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, parts.port or 0,
                                                                 type=socket.SOCK_STREAM)
        except OSError as exc:
            return f"cannot resolve {parts.hostname}: {exc.strerror or exc}"
        for info in infos:
            reason = self.refuses_address(str(info[4][0]))
            if reason is not None:
                return f"{parts.hostname} -> {reason}"
        return None


def webhook_specs(data: Any, loc: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Mapping[str, Any]]]:
    """Every webhook-shaped mapping (``url``/``headers``) in raw dialplan data, with its location."""
    if isinstance(data, Mapping):
        if isinstance(data.get("headers"), Mapping) or isinstance(data.get("url"), str):
            yield loc, data
        for key, value in data.items():
            yield from webhook_specs(value, (*loc, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from webhook_specs(value, (*loc, index))


def webhook_findings(data: Any, egress: WebhookEgress) -> list[tuple[tuple[Any, ...], str, str]]:
    """(location, problem, fix) for literal secrets and refused destinations in a dialplan's raw data."""
    found: list[tuple[tuple[Any, ...], str, str]] = []
    for loc, spec in webhook_specs(data):
        headers = spec.get("headers")
        if isinstance(headers, Mapping):
            for name, value in headers.items():
                reason = literal_secret(str(name), str(value))
                if reason is not None:
                    found.append(((*loc, "headers", name), f"{reason}: secrets may not be written in a dialplan",
                                  f"write it as an environment reference, e.g. {name}: \"Bearer ${{BANK_API_TOKEN}}\""))
        url = spec.get("url")
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            reason = egress.refuses_url_statically(url)
            if reason is not None:
                found.append(((*loc, "url"), f"webhook destination refused: {reason}",
                              ("call the company's systems; open a network with webhook_egress.allow if it is "
                               "really meant")))
    return found
