"""UDP transport for SIP: one socket, datagrams in, bytes out (RFC 3261 §18)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from typing import Callable, Iterable

from .logthrottle import LogThrottle

log = logging.getLogger("voicebot.sip.transport")

Addr = tuple[str, int]
DatagramHandler = Callable[[bytes, Addr], None]


class EgressPolicy:
    """Where this node may send signalling and media: a guard against reflection via crafted headers/SDP."""

    def __init__(self, allow: Iterable[str] = ("0.0.0.0/0", "::/0")) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in allow]

    def allows(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        return any(ip.version == n.version and ip in n for n in self.networks)


class UdpTransport(asyncio.DatagramProtocol):
    """A bound UDP socket delivering each datagram to ``handler``; ``send`` never raises."""

    def __init__(self, handler: DatagramHandler, egress: EgressPolicy | None = None,
                 max_datagram: int = 65535) -> None:
        self._handler = handler
        self._egress = egress or EgressPolicy()
        self._max = max_datagram
        self._transport: asyncio.DatagramTransport | None = None
        self.local_addr: Addr = ("", 0)
        self.dropped_egress = 0
        self.oversize = 0
        self._log_throttle = LogThrottle()

    @classmethod
    async def bind(cls, host: str, port: int, handler: DatagramHandler, egress: EgressPolicy | None = None,
                   max_datagram: int = 65535) -> "UdpTransport":
        loop = asyncio.get_running_loop()
        proto = cls(handler, egress, max_datagram)
        await loop.create_datagram_endpoint(lambda: proto, local_addr=(host, port))
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's UDPTransport is duck-typed
        sockname = transport.get_extra_info("sockname")
        self.local_addr = (sockname[0], sockname[1])

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[override]
        if len(data) > self._max:
            self.oversize += 1
            suppressed = self._log_throttle.admit("oversize", time.monotonic())
            if suppressed is not None:
                log.warning("dropped oversize datagram", extra={"fields": {
                    "src": f"{addr[0]}:{addr[1]}", "bytes": len(data), "suppressed": suppressed}})
            return
        try:
            self._handler(data, (addr[0], addr[1]))
        except Exception:  # noqa: BLE001 - one bad datagram must never stop the socket
            log.exception("unhandled error processing datagram from %s:%s", addr[0], addr[1])

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error: %s", exc)

    def send(self, data: bytes, addr: Addr) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if not self._egress.allows(addr[0]):
            self.dropped_egress += 1
            log.warning("egress to %s blocked by policy", addr[0])
            return
        try:
            self._transport.sendto(data, addr)
        except OSError as exc:
            log.warning("send to %s:%s failed: %s", addr[0], addr[1], exc)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
