"""SIP over TCP and TLS (RFC 3261 §18): listeners, one connection table, outbound connects, keep-alives.

A connection is known by the peer's address as seen on the socket, plus any alias the peer grants with
``;alias`` in its Via (RFC 5923): responses and our in-dialog requests reuse it. Connections idle longer than
``idle_timeout_s`` are closed; each source address may hold at most ``max_per_source`` of them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any, Callable, Coroutine, Literal

from .framing import PONG, Frame, FramingError, Ping, StreamFramer
from .certnames import canonical_name, names_match
from .logthrottle import LogThrottle
from .tls import TlsSession, peer_names, peer_subject

log = logging.getLogger("voicebot.sip.stream")

Addr = tuple[str, int]
Kind = Literal["tcp", "tls"]
MessageHandler = Callable[[bytes, "Connection"], None]  # the message and the connection it arrived on
BadFrameHandler = Callable[[bytes, Addr, Kind, str], None]


@dataclass(frozen=True)
class StreamSettings:
    idle_timeout_s: float = 300.0
    max_connections: int = 4096
    max_per_source: int = 32
    connect_timeout_s: float = 5.0
    handshake_timeout_s: float = 10.0
    max_message_bytes: int = 65535


def addr_key(host: str, port: int) -> Addr:
    """One spelling per address: no brackets, lower case (IPv6), no IPv4-mapped prefix."""
    host = host.strip("[]").lower()
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return (host, port)


def alias_host_allowed(host: str, source: str, cert_names: tuple[str, ...]) -> bool:
    """Whether a connection from ``source`` whose peer proved ``cert_names`` may alias a Via sent-by ``host``:
    the same IP address (any spelling), or one of the certificate's names (RFC 5923 §10.2)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        same = canonical_name(host) == canonical_name(source)
    except ValueError:
        same = False
    return same or names_match((host,), cert_names)


class Connection(asyncio.Protocol):
    """One TCP or TLS connection carrying framed SIP messages in both directions."""

    def __init__(self, owner: "StreamTransport", kind: Kind, *, outbound: bool = False,
                 server_ctx: ssl.SSLContext | None = None) -> None:
        self.owner = owner
        self.kind: Kind = kind
        self.outbound = outbound
        self.remote: Addr = ("", 0)
        self.keys: set[Addr] = set()
        self.framer = StreamFramer(owner.settings.max_message_bytes)
        self.last_activity = time.monotonic()
        self.ready = False  # TLS handshake done (or plain TCP connected)
        self.closed = False
        self._transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._tls = TlsSession(server_ctx) if server_ctx is not None else None
        self.accepted_at = time.monotonic()
        self.peer_name: str | None = None  # common name of the peer's verified TLS certificate (either direction)
        self.peer_names: tuple[str, ...] = ()  # every name that certificate proves (CN, subjectAltName)

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.remote = addr_key(peer[0], peer[1]) if peer else ("", 0)
        if self.outbound:  # asyncio completed the handshake (TLS) before calling this
            self._learn_peer(transport.get_extra_info("ssl_object"))
            self._become_ready()
            return
        refusal = self.owner.refusal(self.remote[0])
        if refusal is not None:
            self.owner.log_refused(self.remote, refusal)
            transport.close()
            self.closed = True
            return
        self.owner.adopt(self)
        if self._tls is None:
            self._become_ready()

    def _tls_received(self, data: bytes) -> bytes | None:
        """Decrypt; completes the handshake on the way. None when the connection failed and is closing."""
        assert self._tls is not None and self._transport is not None
        was_ready = self.ready
        try:
            plain, reply = self._tls.receive(data)
        except ssl.SSLError as exc:
            if not was_ready:
                self._transport.write(self._tls.alert())
                self.owner.log_tls_failure(self.remote, exc)
            else:
                log.info("tls record error", extra={"fields": {"peer": f"{self.remote[0]}:{self.remote[1]}",
                                                               "reason": str(exc.reason or exc)}})
            self.close()
            return None
        if reply:
            self._transport.write(reply)
        if self._tls.peer_closed:
            self._transport.write(self._tls.shutdown())
            self.close()
            return None
        if self._tls.established and not was_ready:
            self._learn_peer(self._tls.ssl_object)
            self._become_ready()
        return plain

    def _learn_peer(self, ssl_object: ssl.SSLObject | None) -> None:
        """The names the peer's certificate proves, on a connection of either direction: only a verified one
        has any (an unverified certificate, e.g. verify_server off, gives none)."""
        subject = self.peer_name = peer_subject(ssl_object)
        self.peer_names = peer_names(ssl_object)
        if subject is not None:
            log.info("tls peer certificate", extra={"fields": {
                "src" if not self.outbound else "dst": f"{self.remote[0]}:{self.remote[1]}", "subject": subject}})

    def _become_ready(self) -> None:
        self.ready = True
        for data in self._pending:
            self._write_now(data)
        self._pending.clear()

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        if self._tls is not None:
            plain = self._tls_received(data)
            if not plain:
                return
            data = plain
        for event in self.framer.feed(data):
            if isinstance(event, Frame):
                self.owner.on_message(event.data, self)
            elif isinstance(event, Ping):
                self._write_now(PONG)
            elif isinstance(event, FramingError):
                self.owner.on_bad_frame(event.head, self.remote, self.kind, event.reason)
                self.close()
            if self.closed:
                return

    def eof_received(self) -> bool | None:
        return None  # close our side as well

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.owner.forget(self)

    # ------------------------------------------------------------------ writing
    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.ready:
            self._pending.append(data)
            return
        self._write_now(data)

    def _write_now(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self.last_activity = time.monotonic()
        if self._tls is not None:
            try:
                data = self._tls.send(data)
            except ssl.SSLError:
                self.close()
                return
        self._transport.write(data)

    def close(self) -> None:
        """Close after what is buffered has been written."""
        if self._transport is not None:
            self._transport.close()
        self.closed = True
        self.owner.forget(self)

    def abort_pending(self) -> None:
        self._pending.clear()


class StreamTransport:
    """Listeners and connections of the two stream transports, with limits and idle sweeping."""

    def __init__(self, on_message: MessageHandler, on_bad_frame: BadFrameHandler,
                 settings: StreamSettings | None = None) -> None:
        self.on_message = on_message
        self.on_bad_frame = on_bad_frame
        self.settings = settings or StreamSettings()
        self.client_ctx: ssl.SSLContext | None = None
        self.server_ctx: ssl.SSLContext | None = None  # the TLS listener's: read per accepted connection (rotation)
        self.banned: Callable[[str], bool] = lambda host: False
        self.on_connect_failed: Callable[[Addr, Kind, str], None] = lambda addr, kind, reason: None
        self.ports: dict[Kind, int] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._table: dict[tuple[Kind, Addr], Connection] = {}
        self._all: set[Connection] = set()
        self._per_source: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._throttle = LogThrottle()
        self.refused = 0
        self.tls_failures = 0

    # ------------------------------------------------------------------ lifecycle
    async def listen(self, kind: Kind, host: str, port: int, server_ctx: ssl.SSLContext | None = None) -> int:
        """Listen for ``kind``; a TLS listener needs ``server_ctx`` (replace it later with use_contexts)."""
        loop = asyncio.get_running_loop()
        if kind == "tls":
            if server_ctx is None:
                raise ValueError("a TLS listener needs a server context")
            self.server_ctx = server_ctx
        server = await loop.create_server(
            lambda: Connection(self, kind, server_ctx=self.server_ctx if kind == "tls" else None), host, port,
            reuse_address=True, backlog=1024)
        self._servers.append(server)
        bound = int(server.sockets[0].getsockname()[1])
        self.ports[kind] = bound
        if self._sweeper is None:
            self._sweeper = asyncio.ensure_future(self._sweep())
        return bound

    def use_contexts(self, server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
        """Certificate rotation: connections accepted or opened from now on use these contexts; established ones
        keep the TLS session they have."""
        if self.server_ctx is not None:
            self.server_ctx = server_ctx
        self.client_ctx = client_ctx

    def close(self) -> None:
        for server in self._servers:
            server.close()
        for conn in list(self._all):
            conn.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def connections(self) -> int:
        return len(self._all)

    # ------------------------------------------------------------------ table
    def refusal(self, host: str) -> str | None:
        """Why a new connection from ``host`` is refused, or None."""
        if self.banned(host):
            return "source banned"
        if len(self._all) >= self.settings.max_connections:
            return "connection limit"
        if self._per_source.get(host, 0) >= self.settings.max_per_source:
            return "per-source connection limit"
        return None

    def adopt(self, conn: Connection) -> None:
        self._all.add(conn)
        self._per_source[conn.remote[0]] = self._per_source.get(conn.remote[0], 0) + 1
        self._bind(conn, conn.remote)

    def _bind(self, conn: Connection, addr: Addr) -> None:
        key = (conn.kind, addr)
        self._table[key] = conn
        conn.keys.add(addr)

    def alias(self, conn: Connection, via_addr: Addr) -> str | None:
        """RFC 5923: the peer lets requests for ``via_addr`` (its Via sent-by) reuse ``conn``. Bound only when
        the sent-by host is the connection's own source IP or a name its verified certificate proves (§10.2),
        and the address is not held by another live connection. Returns why it was refused (None: bound)."""
        addr = addr_key(*via_addr)
        if conn.closed or addr == conn.remote:
            return None
        if not alias_host_allowed(addr[0], conn.remote[0], conn.peer_names):
            return "sent-by host is neither the connection's source address nor a name of its certificate"
        holder = self._table.get((conn.kind, addr))
        if holder is not None and holder is not conn and not holder.closed:
            return "address held by another connection"
        self._bind(conn, addr)
        return None

    def forget(self, conn: Connection) -> None:
        if conn not in self._all:
            return
        self._all.discard(conn)
        log.info("sip connection closed", extra={"fields": {
            "peer": f"{conn.remote[0]}:{conn.remote[1]}", "transport": conn.kind, "outbound": conn.outbound}})
        for addr in conn.keys:
            if self._table.get((conn.kind, addr)) is conn:
                del self._table[(conn.kind, addr)]
        conn.keys.clear()
        left = self._per_source.get(conn.remote[0], 1) - 1
        if left > 0:
            self._per_source[conn.remote[0]] = left
        else:
            self._per_source.pop(conn.remote[0], None)

    def find(self, addr: Addr, kind: Kind | None = None) -> Connection | None:
        """The open connection to ``addr`` (of ``kind``, or either kind when None)."""
        addr = addr_key(*addr)
        kinds: tuple[Kind, ...] = (kind,) if kind is not None else ("tls", "tcp")
        for k in kinds:
            conn = self._table.get((k, addr))
            if conn is not None and not conn.closed:
                return conn
        return None

    # ------------------------------------------------------------------ sending
    def send(self, data: bytes, addr: Addr, kind: Kind, server_name: str | None = None) -> None:
        """Write on the connection to ``addr``, opening one first when there is none."""
        conn = self.find(addr, kind)
        if conn is None:
            conn = self._connect(addr, kind, server_name)
        conn.write(data)

    def _connect(self, addr: Addr, kind: Kind, server_name: str | None) -> Connection:
        conn = Connection(self, kind, outbound=True)
        conn.remote = addr_key(*addr)
        self._all.add(conn)
        self._per_source[conn.remote[0]] = self._per_source.get(conn.remote[0], 0) + 1
        self._bind(conn, conn.remote)
        self.spawn(self._open(conn, server_name))
        return conn

    async def _open(self, conn: Connection, server_name: str | None) -> None:
        loop = asyncio.get_running_loop()
        host, port = conn.remote
        context: ssl.SSLContext | None = None
        if conn.kind == "tls":
            context = self.client_ctx or ssl.create_default_context()
        try:
            await asyncio.wait_for(loop.create_connection(
                lambda: conn, host, port, ssl=context, server_hostname=(server_name or host) if context else None,
                ssl_handshake_timeout=self.settings.handshake_timeout_s if context else None),
                self.settings.connect_timeout_s)
        except (OSError, asyncio.TimeoutError) as exc:
            conn.abort_pending()
            conn.closed = True
            self.forget(conn)
            reason = _tls_reason(exc) if isinstance(exc, ssl.SSLError) else (str(exc) or type(exc).__name__)
            log.warning("sip connection failed", extra={"fields": {
                "dst": f"{host}:{port}", "transport": conn.kind, "server_name": server_name or host,
                "reason": reason}})
            self.on_connect_failed(conn.remote, conn.kind, reason)

    # ------------------------------------------------------------------ upkeep
    async def _sweep(self) -> None:
        interval = max(0.05, min(5.0, self.settings.idle_timeout_s / 4, self.settings.handshake_timeout_s / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            late = now - self.settings.handshake_timeout_s
            for conn in [c for c in self._all if not c.ready and not c.outbound and c.accepted_at < late]:
                self.log_tls_failure(conn.remote, asyncio.TimeoutError())
                conn.close()
            cutoff = now - self.settings.idle_timeout_s
            for conn in [c for c in self._all if c.last_activity < cutoff]:
                log.info("idle sip connection closed", extra={"fields": {
                    "peer": f"{conn.remote[0]}:{conn.remote[1]}", "transport": conn.kind,
                    "idle_s": self.settings.idle_timeout_s}})
                conn.close()

    def log_refused(self, remote: Addr, reason: str) -> None:
        self.refused += 1
        suppressed = self._throttle.admit(f"refused {reason}", time.monotonic())
        if suppressed is not None:
            log.warning("sip connection refused", extra={"fields": {
                "src": f"{remote[0]}:{remote[1]}", "reason": reason, "suppressed": suppressed}})

    def log_tls_failure(self, remote: Addr, exc: BaseException) -> None:
        self.tls_failures += 1
        reason = _tls_reason(exc)
        suppressed = self._throttle.admit(f"tls handshake {reason}", time.monotonic())  # a line per reason
        if suppressed is not None:
            log.warning("tls handshake failed", extra={"fields": {
                "src": f"{remote[0]}:{remote[1]}", "reason": reason, "suppressed": suppressed}})


def _tls_reason(exc: BaseException) -> str:
    """A short reason: the OpenSSL reason code when there is one (e.g. CERTIFICATE_VERIFY_FAILED)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, asyncio.TimeoutError):
        return "handshake timed out"
    return str(exc) or type(exc).__name__
