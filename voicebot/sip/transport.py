"""UDP transport for SIP: one socket, datagrams in, bytes out (RFC 3261 §18)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import sys
import time
from typing import Any, Callable, Iterable, cast

from .logthrottle import LogThrottle

log = logging.getLogger("voicebot.sip.transport")

Addr = tuple[str, int]
DatagramHandler = Callable[[bytes, Addr], None]
SO_RCVBUFFORCE = 33  # Linux: like SO_RCVBUF but above net.core.rmem_max (needs CAP_NET_ADMIN)


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


def set_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a ``size``-byte receive buffer (beyond net.core.rmem_max when privileged); the size granted, as
    the kernel reports it (Linux doubles the request for its bookkeeping)."""
    try:
        if sys.platform != "linux":
            raise PermissionError
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)  # capped at net.core.rmem_max
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


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
                   max_datagram: int = 65535, receive_buffer_bytes: int | None = None) -> "UdpTransport":
        loop = asyncio.get_running_loop()
        proto = cls(handler, egress, max_datagram)
        await loop.create_datagram_endpoint(lambda: proto, local_addr=(host, port))
        if receive_buffer_bytes is not None and proto._transport is not None:
            sock = proto._transport.get_extra_info("socket")
            granted = set_receive_buffer(sock, receive_buffer_bytes)
            fields = {"port": proto.local_addr[1], "requested": receive_buffer_bytes, "granted": granted}
            if granted < receive_buffer_bytes:
                log.warning("sip receive buffer smaller than requested: raise net.core.rmem_max (sysctl) or run "
                            "with CAP_NET_ADMIN", extra={"fields": fields})
            else:
                log.info("sip receive buffer", extra={"fields": fields})
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)  # uvloop's UDPTransport is duck-typed
        sockname = transport.get_extra_info("sockname")
        self.local_addr = (sockname[0], sockname[1])

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
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
