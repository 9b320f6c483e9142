"""Bind browser (WebRTC) media to one configured address instead of every interface.

aiortc gathers ICE host candidates with aioice, which opens a UDP socket on every local address. Gathering done
inside :func:`bound_to` uses only the given address (a wildcard such as 0.0.0.0 or :: keeps every interface):

    with bound_to("127.0.0.1"):
        await pc.setLocalDescription(await pc.createAnswer())   # candidates (and sockets) on 127.0.0.1 only
"""

from __future__ import annotations

import contextvars
import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager

import aioice.ice

__all__ = ["bound_to", "media_addresses"]

_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar("media_addresses", default=None)
_original = aioice.ice.get_host_addresses
WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})


def media_addresses(host: str | None) -> tuple[str, ...] | None:
    """The addresses media may bind for ``host`` (an IP literal), or None for every interface."""
    if host is None or host in WILDCARDS:
        return None
    try:
        return (str(ipaddress.ip_address(host.strip("[]"))),)
    except ValueError:
        raise ValueError(f"browser media needs an IP address to bind, got {host!r}") from None


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    chosen = _ADDRESSES.get()
    if chosen is None:
        return _original(use_ipv4, use_ipv6)
    return [a for a in chosen if (use_ipv6 if ":" in a else use_ipv4)]


aioice.ice.get_host_addresses = _host_addresses  # consults the context; unchanged outside bound_to()


@contextmanager
def bound_to(host: str | None) -> Iterator[None]:
    """ICE gathering started in this context (and tasks it spawns) binds only ``host``'s address."""
    token = _ADDRESSES.set(media_addresses(host))
    try:
        yield
    finally:
        _ADDRESSES.reset(token)
