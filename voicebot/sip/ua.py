"""The SIP user agent: transport + transaction tables + dialogs, dispatching to the application.

Inbound: parse → 4xx for bad input → ACL / limits → transaction matching → dialog or the handler table
(:mod:`voicebot.sip.handlers`: one responder and any observers per method; ``ua.handle("REGISTER", fn)``).
Outbound: requests with Via/branch, digest auth retry (401/407), INVITE with custom headers, CANCEL, REGISTER.
Calls see the UA only through :class:`voicebot.sip.call.CallTransport`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Coroutine, Iterable, Literal

from . import digest
from .call import CallState, SipCall
from .dialog import Dialog, new_call_id, new_tag
from .admission import SetupAdmission
from .challenge import DigestGuard
from .handlers import HandlerTable, Incoming, Observer, Responder
from .hooks import Removed, Unsubscribe
from .logthrottle import LogThrottle, clip
from . import prack
from .session_timer import SessionTimerPolicy, TooSmall, from_answer, negotiate as negotiate_session_timer, \
    offer_headers
from .ratelimit import SourceLimiter
from .headers import SipParseError
from .message import Arrival, SipRequest, SipResponse
from .parser import parse_message
from .uri import parse_name_addr, parse_uri
from .transaction import (ClientTransaction, ServerTransaction, Timers, TransactionTimeout, new_branch,
                          server_key)
from .stream import Connection, Kind, StreamSettings, StreamTransport, addr_key
from .tls import TlsIdentity, TlsSettings, client_context, load_identity
from .transport import EgressPolicy, UdpTransport
from .validate import build_response, check_request, default_reason

log = logging.getLogger("voicebot.sip.ua")

Addr = tuple[str, int]
TransportName = Literal["udp", "tcp", "tls"]
InviteHandler = Callable[[SipCall], Awaitable[None]]

CORE_METHODS = {"ACK", "CANCEL"}  # transaction-layer methods, handled by the UA itself
DIALOG_METHODS = {"INVITE", "OPTIONS", "BYE", "INFO", "REFER", "NOTIFY", "UPDATE", "PRACK"}  # go to the call when in a dialog
NO_DIALOG_METHODS = ("BYE", "INFO", "REFER", "NOTIFY", "UPDATE", "PRACK")  # outside a dialog: 481 unless an app claims them
UNADVERTISED = {"REGISTER"}  # served for agent phones, not a call method: left out of Allow in OPTIONS and INVITEs
SUPPORTED_EXTENSIONS = {"replaces", "norefersub", "timer", "100rel"}
ACCEPTED_CONTENT_TYPES = {"application/sdp", "application/dtmf-relay", "application/dtmf", "message/sipfrag",
                          "multipart/mixed"}


class CallFailed(Exception):
    """An outbound INVITE ended without a 2xx."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


@dataclass
class Credentials:
    username: str
    password: str


@dataclass
class UaLimits:
    max_calls: int = 500
    max_calls_per_source: int = 50
    max_message_bytes: int = 65535
    max_headers: int = 128
    requests_per_source_per_s: float = 20.0
    receive_buffer_bytes: int | None = None  # SO_RCVBUF of the SIP socket (None: the kernel's default)
    admission: SetupAdmission = field(default_factory=SetupAdmission)


@dataclass(frozen=True)
class TransportOptions:
    """Which transports listen (RFC 3261 §18) and how: TCP shares the UDP port, TLS has its own."""

    transports: tuple[TransportName, ...] = ("udp",)
    tls_port: int = 5061
    tls: TlsSettings | None = None
    stream: StreamSettings = field(default_factory=StreamSettings)
    udp_mtu_limit: int = 1300  # RFC 3261 §18.1.1: larger requests go over TCP when TCP is on


@dataclass(frozen=True)
class Route:
    """How to reach an address we resolved from a URI: its transport and, for TLS, the name to verify."""

    kind: TransportName
    server_name: str | None = None


MAX_ROUTES = 10_000  # remembered outbound routes and stream peers (least recently added dropped first)
DEFAULT_PORTS: dict[str, int] = {"udp": 5060, "tcp": 5060, "tls": 5061}


@dataclass
class UaStats:
    requests: int = 0
    responses: int = 0
    parse_errors: int = 0
    dropped: int = 0
    rejected_acl: int = 0
    dropped_before_parse: int = 0  # banned or rate-limited sources, refused before their bytes were parsed
    calls_total: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


class UserAgent:
    """Server-grade SIP UA on one UDP socket."""

    on_invite = Removed("ua.accept_calls(handler)")
    on_register = Removed('ua.handle("REGISTER", registrar.respond)')

    def __init__(self, host: str = "127.0.0.1", port: int = 5060, *, public_host: str | None = None,
                 timers: Timers | None = None, acl: Iterable[str] = ("127.0.0.0/8", "::1/128"),
                 egress: EgressPolicy | None = None, limits: UaLimits | None = None,
                 user_agent: str = "voicebot/0.1", transports: TransportOptions | None = None) -> None:
        self.host = host
        self.port = port
        self.public_host = public_host
        self.timers = timers or Timers()
        self.acl = [ipaddress.ip_network(n, strict=False) for n in acl]
        self.egress = egress or EgressPolicy()
        self.limits = limits or UaLimits()
        self.other_calls: Callable[[], int] = lambda: 0  # calls on other channels (browser) sharing max_calls
        self.user_agent = user_agent
        self.guard: DigestGuard | None = None  # digest challenge for INVITEs from non-trunk sources
        self.handlers = HandlerTable()
        self.handlers.default("INVITE", self.call_setup(None))
        self.handlers.default("OPTIONS", self._answer_options)
        for method in NO_DIALOG_METHODS:
            self.handlers.default(method, _no_dialog)
        self.accepting = True
        # whose PAI/RPID we believe: (source host, how the request arrived) -> bool
        self.trusted_identity: Callable[[str, Arrival], bool] = lambda _host, _arrival: False
        self.session_timers = SessionTimerPolicy()  # RFC 4028 on the calls we answer and the legs we place
        self.media_lag: Callable[[], float] = lambda: 0.0  # seconds the media clock is behind (admission by load)
        self.stats = UaStats()
        self.transport: UdpTransport | None = None
        self.options = transports or TransportOptions()
        self.stream: StreamTransport | None = None
        self.tls_identity: TlsIdentity | None = None  # the certificate new TLS connections show (rotated on reload)
        self.ports: dict[str, int] = {}  # transport -> bound port
        self._routes: OrderedDict[Addr, Route] = OrderedDict()  # outbound targets by transport
        self._stream_peers: OrderedDict[Addr, Kind] = OrderedDict()  # sources that reached us over TCP/TLS
        self._server_txs: dict[tuple[object, ...], ServerTransaction] = {}
        self._client_txs: dict[tuple[str, str], ClientTransaction] = {}
        self._dialogs: dict[tuple[str, str, str], SipCall] = {}
        self._pending_invites: dict[tuple[object, ...], SipCall] = {}
        self._calls: set[SipCall] = set()
        self._per_source: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_drop_log = 0.0
        rate = self.limits.requests_per_source_per_s
        self.limiter = SourceLimiter(rate=rate, burst=max(10.0, 2 * rate), on_ban=self._on_source_banned)
        self._log_throttle = LogThrottle()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Bind every configured transport; with port 0, UDP and TCP get one free port number together."""
        asked = self.port
        for attempt in range(20):
            try:
                await self._bind_all(self.options.transports, asked)
                return
            except OSError:
                self._close_transports()
                if asked != 0 or attempt == 19:
                    raise

    async def _bind_all(self, kinds: tuple[TransportName, ...], port: int) -> None:
        if "udp" in kinds:
            self.transport = await UdpTransport.bind(self.host, port, self._on_datagram, self.egress,
                                                     max_datagram=max(self.limits.max_message_bytes, 65535),
                                                     receive_buffer_bytes=self.limits.receive_buffer_bytes)
            port = self.transport.local_addr[1]
            self.ports["udp"] = port
        opts = self.options
        settings = opts.stream
        if settings.max_message_bytes != self.limits.max_message_bytes:
            settings = StreamSettings(**{**settings.__dict__, "max_message_bytes": self.limits.max_message_bytes})
        self.stream = StreamTransport(self._on_stream_message, self._on_bad_frame, settings)
        self.stream.banned = lambda host: self.limiter.banned(host, time.monotonic())
        self.stream.on_connect_failed = self._on_connect_failed
        self.tls_identity = load_identity(opts.tls) if opts.tls is not None else None
        self.stream.client_ctx = self.tls_identity.client if self.tls_identity else client_context(None)
        if "tcp" in kinds:
            port = self.ports["tcp"] = await self.stream.listen("tcp", self.host, port)
        if "tls" in kinds:
            if self.tls_identity is None:
                raise ValueError("the tls transport needs a certificate and key (listen.tls)")
            self.ports["tls"] = await self.stream.listen("tls", self.host, opts.tls_port, self.tls_identity.server)
        self.port = self.ports.get("udp") or self.ports.get("tcp") or self.ports.get("tls", port)

    def reload_tls(self) -> TlsIdentity:
        """Re-read listen.tls's files (certificate rotation): connections from now on show and trust what they hold,
        established ones keep their session. Raises CertificateError naming the file, changing nothing, when one
        is unusable (expired, key not matching, unreadable)."""
        if self.options.tls is None or self.stream is None:
            raise ValueError("no TLS identity to reload (listen.tls is not set)")
        identity = load_identity(self.options.tls)
        self.stream.use_contexts(identity.server, identity.client)
        self.tls_identity = identity
        return identity

    def _on_connect_failed(self, addr: Addr, kind: Kind, reason: str) -> None:
        for tx in [tx for tx in self._client_txs.values() if addr_key(*tx.addr) == addr]:
            tx.transport_failed(f"{kind} connection failed: {reason}")

    def _close_transports(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        self.ports.clear()

    async def stop(self, hangup_timeout_s: float = 2.0) -> None:
        """Hang up every call at once (a BYE to a peer that never answers would otherwise hold the exit for
        timer F, 32 s a call, one call after another), cancel the call tasks, close the socket."""
        hangups = [asyncio.ensure_future(call.hangup("shutdown")) for call in list(self._calls)]
        if hangups:
            _, unanswered = await asyncio.wait(hangups, timeout=hangup_timeout_s)
            for task in unanswered:
                task.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:  # let their finally blocks release media ports and write call records
            await asyncio.wait(tasks, timeout=5)
        self._close_transports()

    @property
    def advertised_host(self) -> str:
        return self.public_host or self.host

    @property
    def contact_uri(self) -> str:
        return self.contact_for("udp" if "udp" in self.ports or not self.ports else next(iter(self.ports)))

    def contact_for(self, kind: str) -> str:
        """Our Contact URI for a leg on ``kind`` (RFC 3261 §8.1.1.8: the transport the peer should use)."""
        host = self.advertised_host
        host = f"[{host}]" if ":" in host else host
        kind = kind.lower()
        if kind == "udp" or kind not in self.ports:
            return f"sip:voicebot@{host}:{self.ports.get('udp', self.port)}"
        return f"sip:voicebot@{host}:{self.ports[kind]};transport={kind}"

    def kind_for(self, addr: Addr) -> TransportName:
        """The transport a message to ``addr`` takes: an open connection's, else the resolved route's, else UDP."""
        if self.stream is not None:
            conn = self.stream.find(addr)
            if conn is not None:
                return conn.kind
        route = self._routes.get(addr_key(*addr))
        if route is not None:
            return route.kind
        return "udp" if "udp" in self.ports else "tcp"

    # ------------------------------------------------------------------ handler table
    def handle(self, method: str, responder: Responder) -> Unsubscribe:
        """Answer out-of-dialog ``method`` requests with ``responder`` (one per method; see handlers.py)."""
        return self.handlers.handle(method, responder)

    def observe(self, method: str, observer: Observer) -> Unsubscribe:
        """See every admitted ``method`` request, in a dialog or not, before it is answered."""
        return self.handlers.observe(method, observer)

    def accept_calls(self, on_call: InviteHandler) -> Unsubscribe:
        """New INVITEs become calls handed to ``on_call`` (after admission); unsubscribing restores 480."""
        return self.handle("INVITE", self.call_setup(on_call))

    @property
    def supported_methods(self) -> set[str]:
        return set(self.handlers.methods | CORE_METHODS)

    @property
    def allow_header(self) -> str:
        return ", ".join(sorted(self.supported_methods - UNADVERTISED))

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    @property
    def pending_setups(self) -> int:
        """Inbound calls received and not yet answered (nor ended)."""
        return sum(1 for call in self._pending_invites.values()
                   if call.state in (CallState.INCOMING, CallState.RINGING, CallState.ANSWERING))

    def spawn(self, coro: Coroutine[object, object, None] | Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ sending
    def send_bytes(self, data: bytes, addr: Addr) -> None:
        """Send on the open connection to ``addr`` (responses, reuse), else by the route resolved for it."""
        if self.stream is not None:
            conn = self.stream.find(addr)
            if conn is not None:
                conn.write(data)
                return
            route = self._routes.get(addr_key(*addr))
            if route is not None and route.kind != "udp":
                if not self.egress.allows(addr[0]):
                    log.warning("egress to %s blocked by policy", addr[0])
                    return
                self.stream.send(data, addr_key(*addr), route.kind, route.server_name)
                return
        if self.transport is not None:
            self.transport.send(data, addr)

    def send_on(self, data: bytes, addr: Addr, kind: str) -> None:
        """Send to ``addr`` over ``kind``, the transport a request came on (RFC 3261 §18.2.2): a UDP request is
        answered over UDP even when a TCP/TLS connection from the same ip:port is open, and the other way round."""
        if kind == "udp":
            if self.transport is not None:
                self.transport.send(data, addr)
            return
        stream_kind: Kind | None = "tls" if kind == "tls" else "tcp" if kind == "tcp" else None
        conn = self.stream.find(addr, stream_kind) if self.stream is not None and stream_kind is not None else None
        if conn is not None:
            conn.write(data)
            return
        self.send_bytes(data, addr)  # the connection closed: a new one by the route (§18.2.2 falls back likewise)

    def _remember(self, table: OrderedDict, addr: Addr, value: object) -> None:  # type: ignore[type-arg]
        table[addr] = value
        table.move_to_end(addr)
        while len(table) > MAX_ROUTES:
            table.popitem(last=False)

    def send(self, data: bytes, addr: Addr) -> None:  # Sender protocol for transactions
        self.send_bytes(data, addr)

    def make_response(self, req: SipRequest, status: int, reason: str | None = None, *, to_tag: str | None = None,
                      headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                      content_type: str | None = None, contact: bool = False) -> SipResponse:
        """A response to ``req`` per RFC 3261 §8.2.6 (Via, From, To(+tag), Call-ID, CSeq copied)."""
        resp = build_response(req, status, reason or default_reason(status), to_tag=to_tag)
        assert resp is not None  # parsed requests always carry Via, From, To, Call-ID and CSeq
        h = resp.headers
        if contact:
            h.add("Contact", f"<{self.contact_for(req.top_via.transport)}>")
        h.add("Server", self.user_agent)
        for name, value in headers or []:
            h.add(name, value)
        if body:
            h.add("Content-Type", content_type or "application/sdp")
        resp.body = body
        return resp

    def options_response(self, req: SipRequest) -> SipResponse:
        return self.make_response(req, 200 if self.accepting else 503, to_tag=None if req.to.tag else new_tag(),
                                  headers=self._capabilities(), contact=True)

    def _capabilities(self) -> list[tuple[str, str]]:
        return [("Allow", self.allow_header), ("Accept", "application/sdp, application/dtmf-relay, application/dtmf"),
                ("Supported", ", ".join(sorted(SUPPORTED_EXTENSIONS)))]

    def _answer_options(self, incoming: Incoming) -> None:
        """The default OPTIONS responder outside a dialog: what this UA supports, 503 while draining."""
        incoming.respond(200 if self.accepting else 503, headers=self._capabilities(), contact=True)

    def _add_via(self, req: SipRequest, branch: str, kind: str = "udp") -> None:
        """Our Via: the transport the request leaves on, our port for it; ``alias`` on streams (RFC 5923)."""
        host = self.advertised_host
        host = f"[{host}]" if ":" in host else host
        port = self.ports.get(kind, self.port)
        alias = ";alias" if kind != "udp" else ""
        req.headers.remove("Via")
        req.headers.prepend("Via", f"SIP/2.0/{kind.upper()} {host}:{port};branch={branch};rport{alias}")

    async def send_request(self, req: SipRequest, addr: Addr | None = None, *,
                           credentials: Credentials | None = None,
                           on_provisional: Callable[[SipResponse], None] | None = None) -> SipResponse:
        """Send ``req`` in a new client transaction and return its final response (auth retried once)."""
        if addr is None or self._stream_peer_gone(addr):
            addr = await self.resolve_target(req, default=self._stream_peers.get(addr) if addr else None)
        if "Contact" not in req.headers and req.method in ("INVITE", "REFER", "NOTIFY", "SUBSCRIBE",
                                                           "REGISTER", "UPDATE"):
            req.headers.add("Contact", f"<{self.contact_for(self.kind_for(addr))}>")
        if "User-Agent" not in req.headers:
            req.headers.add("User-Agent", self.user_agent)
        resp = await self._run_client_tx(req, addr, on_provisional)
        if resp.status in (401, 407) and credentials is not None:
            challenge_header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
            value = resp.headers.get(challenge_header)
            if value:
                try:
                    challenge = digest.parse_challenge(value)
                except digest.DigestError as exc:
                    log.warning("unusable auth challenge: %s", exc)
                    return resp
                auth = digest.build_authorization(challenge, req.method, req.uri, credentials.username,
                                                  credentials.password, body=req.body)
                num, method = req.cseq
                req.headers.set("CSeq", f"{num + 1} {method}")
                req.headers.remove(digest.response_header_name(resp.status))
                req.headers.add(digest.response_header_name(resp.status), auth)
                resp = await self._run_client_tx(req, addr, on_provisional)
        return resp

    async def _run_client_tx(self, req: SipRequest, addr: Addr,
                             on_provisional: Callable[[SipResponse], None] | None) -> SipResponse:
        branch = new_branch()
        kind = self.kind_for(addr)
        self._add_via(req, branch, kind)
        if kind == "udp" and "tcp" in self.ports and len(req.serialize()) > self.options.udp_mtu_limit:
            kind = "tcp"  # RFC 3261 §18.1.1: too large for UDP without fragmentation
            self._remember(self._routes, addr_key(*addr), Route("tcp"))
            self._add_via(req, branch, kind)
        tx = ClientTransaction(req, addr, self, self.timers, self._client_tx_done, on_provisional,
                               reliable=kind != "udp")
        self._client_txs[tx.key] = tx
        tx.start()
        return await tx.final

    def _client_tx_done(self, tx: ClientTransaction) -> None:
        self._client_txs.pop(tx.key, None)

    def send_ack(self, dialog: Dialog, invite: SipRequest, response: SipResponse) -> None:
        """ACK for a 2xx: a new request of its own, sent to the dialog's remote target (§13.2.2.4)."""
        ack = dialog.create_request("ACK", cseq=invite.cseq[0])
        for name in ("Authorization", "Proxy-Authorization"):
            for v in invite.headers.get_all(name):
                ack.headers.add(name, v)
        if dialog.peer_addr is None:
            return
        self._add_via(ack, new_branch(), self.kind_for(dialog.peer_addr))
        data = ack.serialize()
        if dialog.peer_addr is not None:
            self.send_bytes(data, dialog.peer_addr)

    async def resolve_target(self, req: SipRequest, default: TransportName | None = None) -> Addr:
        """Next hop of ``req`` (first Route, else the Request-URI) and its transport: ``sips:`` → TLS, else
        the URI's ``transport=`` parameter, else ``default`` or UDP (RFC 3263 §4.1 without NAPTR/SRV)."""
        routes = req.headers.values("Route")
        uri_text = str(parse_name_addr(routes[0]).uri) if routes else req.uri
        uri = parse_uri(uri_text)
        kind = uri_transport(uri.scheme, uri.params.get("transport"), default)
        port = uri.port or DEFAULT_PORTS[kind]
        host = (uri.params.get("maddr") or uri.host).strip("[]")
        try:
            ipaddress.ip_address(host)
            addr = addr_key(host, port)
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
            addr = addr_key(str(infos[0][4][0]), port)
        self._remember(self._routes, addr, Route(kind, host))
        return addr

    def _stream_peer_gone(self, addr: Addr) -> bool:
        """True when ``addr`` reached us over TCP/TLS and that connection has closed: a new request must go
        to the peer's Contact (RFC 3261 §18.1.1), not to the source port of a connection that is gone."""
        key = addr_key(*addr)
        return key in self._stream_peers and (self.stream is None or self.stream.find(key) is None) \
            and key not in self._routes

    # ------------------------------------------------------------------ outbound INVITE
    async def invite(self, target: str, *, from_uri: str | None = None, sdp: bytes = b"",
                     headers: list[tuple[str, str]] | None = None, credentials: Credentials | None = None,
                     addr: Addr | None = None, on_ringing: Callable[[SipResponse], None] | None = None,
                     on_created: Callable[[SipCall], None] | None = None,
                     on_early_media: Callable[[bytes], None] | None = None) -> SipCall:
        """Place a call; returns a confirmed SipCall or raises CallFailed. ``on_early_media`` gets the SDP of
        a 183 (or 180) before the answer; reliable provisionals are acknowledged with PRACK (RFC 3262)."""
        from_value = from_uri or f"<{self.contact_uri}>"
        req = SipRequest(method="INVITE", uri=target)
        h = req.headers
        h.add("Max-Forwards", "70")
        h.add("From", f"{from_value};tag={new_tag()}")
        h.add("To", f"<{target}>")
        h.add("Call-ID", new_call_id(self.advertised_host))
        h.add("CSeq", "1 INVITE")
        h.add("Allow", self.allow_header)
        h.add("Supported", "100rel")
        for name, value in headers or []:
            h.add(name, value)
        timed = "Session-Expires" not in h  # a caller that set its own keeps it (and its timer is its own)
        if timed:
            for name, value in offer_headers(self.session_timers):
                h.add(name, value)
        if sdp:
            h.add("Content-Type", "application/sdp")
            req.body = sdp
        if addr is None:
            addr = await self.resolve_target(req)
        call = SipCall(self, req, addr, inbound=False)
        call.local_sdp = sdp
        call.on_early_media = on_early_media
        self._calls.add(call)
        if on_created is not None:
            on_created(call)  # lets the caller CANCEL a call that rings too long

        def provisional(resp: SipResponse) -> None:
            ringing = call.provisional(resp)
            prack.on_provisional(call, resp, addr)
            if ringing and on_ringing is not None:
                on_ringing(resp)

        min_se: int | None = None
        try:
            resp = await self.send_request(req, addr, credentials=credentials, on_provisional=provisional)
            if timed and resp.status == 422 and call.state is not CallState.ENDED:
                min_se = _min_se(resp)
            if min_se is not None:  # RFC 4028 §7.4: once more with the interval the answerer accepts
                for name, value in offer_headers(self.session_timers, min_se):
                    if name != "Supported":
                        h.set(name, value)
                h.set("CSeq", f"{req.cseq[0] + 1} INVITE")
                resp = await self.send_request(req, addr, credentials=credentials, on_provisional=provisional)
        except TransactionTimeout:
            call.failed("timeout")
            raise CallFailed(408, "Request Timeout") from None
        if call.state is CallState.ENDED:
            raise CallFailed(487, "Request Terminated")
        if not 200 <= resp.status < 300:
            call.failed(f"failed {resp.status}")
            raise CallFailed(resp.status, resp.reason)
        dialog = Dialog.from_2xx(req, resp, addr)
        call.early.carry_cseq(dialog)
        call.session_timer = from_answer(resp.headers, self.session_timers, min_se) if timed else None
        call.confirmed(dialog, resp.body, resp)
        self.send_ack(dialog, req, resp)
        tx = self._find_client_tx(req)
        if tx is not None:
            tx.extra_2xx = lambda r: self.send_ack(dialog, req, r)
        return call

    def _find_client_tx(self, req: SipRequest) -> ClientTransaction | None:
        return self._client_txs.get((req.top_via.branch or "", req.method))

    def abandon_request(self, req: SipRequest) -> bool:
        """Stop waiting for ``req``'s final response (a health check past its deadline): its transaction ends
        and ``send_request`` raises TransactionTimeout. False when ``req`` has no transaction (not sent yet)."""
        tx = self._find_client_tx(req)
        if tx is not None:
            tx.terminate()
        return tx is not None

    def abandon_invite(self, invite: SipRequest) -> None:
        """Give up an outbound INVITE that got no provisional response: no CANCEL may be sent yet (§9.1), so
        stop retransmitting; a late answer finds no transaction and is dropped."""
        tx = self._find_client_tx(invite)
        if tx is not None:
            tx.terminate()

    async def cancel_invite(self, invite: SipRequest, addr: Addr) -> None:
        """CANCEL a pending outbound INVITE sent to ``addr`` (§9.1)."""
        req = invite
        cancel = SipRequest(method="CANCEL", uri=req.uri)
        cancel.headers.add("Via", req.headers.values("Via")[0])
        for name in ("Route",):
            for v in req.headers.get_all(name):
                cancel.headers.add(name, v)
        cancel.headers.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            cancel.headers.add(name, req.headers.get(name) or "")
        cancel.headers.add("CSeq", f"{req.cseq[0]} CANCEL")
        tx = ClientTransaction(cancel, addr, self, self.timers, self._client_tx_done)
        self._client_txs[tx.key] = tx
        tx.start()
        try:
            await tx.final
        except TransactionTimeout:
            pass

    # ------------------------------------------------------------------ registry
    def register_dialog(self, call: SipCall) -> None:
        assert call.dialog is not None
        self._dialogs[call.dialog.key] = call

    def unregister_call(self, call: SipCall) -> None:
        self._calls.discard(call)
        if call.dialog is not None:
            self._dialogs.pop(call.dialog.key, None)
        if call.inbound and call.server_tx is not None:
            self._pending_invites.pop(call.server_tx.key, None)
            src = call.addr[0]
            left = self._per_source.get(src, 1) - 1
            if left <= 0:
                self._per_source.pop(src, None)
            else:
                self._per_source[src] = left

    # ------------------------------------------------------------------ receiving
    def _on_datagram(self, data: bytes, addr: Addr) -> None:
        if not data.strip(b"\r\n"):
            return  # CRLF keep-alive (RFC 5626)
        self._on_message(data, addr, None)

    def _on_stream_message(self, data: bytes, conn: Connection) -> None:
        """One framed message from a TCP/TLS connection (the framer answered keep-alives already)."""
        self._remember(self._stream_peers, conn.remote, conn.kind)
        self._on_message(data, conn.remote, conn)

    def _on_bad_frame(self, head: bytes, addr: Addr, kind: Kind, reason: str) -> None:
        """A stream that cannot be framed (no/bad Content-Length, too large): 400/513 if possible; the
        connection closes right after."""
        self.stats.parse_errors += 1
        status = 513 if "exceeds" in reason else 400
        self._log_throttled("bad SIP framing, connection closed", addr, transport=kind, reason=clip(reason),
                            bytes=len(head))
        if not self._source_allowed(addr[0]) and not self.limiter.admit(addr[0], time.monotonic()):
            return
        try:
            parsed = parse_message(head + b"\r\n\r\n", max_headers=self.limits.max_headers, stream=True)
            headers, method = parsed.headers, getattr(parsed, "method", None)
        except SipParseError as err:
            if not err.is_request or err.headers is None:
                return
            headers, method = err.headers, err.method
        if method is None or method == "ACK":
            return
        resp = build_response(headers, status, f"{default_reason(status)} ({reason})"[:120])
        if resp is not None:
            self._count(status)
            self.send_bytes(resp.serialize(), addr)

    def _on_message(self, data: bytes, addr: Addr, conn: Connection | None) -> None:
        """A message from UDP (``conn`` None) or from the TCP/TLS connection ``conn``."""
        if not self._admit_before_parse(data, addr):
            self.stats.dropped_before_parse += 1
            return
        kind = conn.kind if conn is not None else None
        try:
            msg = parse_message(data, max_headers=self.limits.max_headers, max_size=self.limits.max_message_bytes,
                                stream=kind is not None)
        except SipParseError as err:
            self.stats.parse_errors += 1
            if self._source_allowed(addr[0]) and self.limiter.admit(addr[0], time.monotonic()):
                self._reply_to_parse_error(err, addr, len(data), kind or "udp")
            else:  # outside the ACL (already charged above) or over its rate: no answer, an aggregated line
                self._log_throttled("bad SIP message dropped", addr, bytes=len(data), reason=clip(err.reason))
            return
        if isinstance(msg, SipResponse):
            self.stats.responses += 1
            self._on_response(msg, addr)
        else:
            self.stats.requests += 1
            msg.arrival = Arrival(conn.kind, conn.peer_name, conn.peer_names) if conn is not None else Arrival("udp")
            if conn is not None and self.stream is not None and "alias" in msg.top_via.params:
                via = msg.top_via
                refused = self.stream.alias(conn, (via.host, via.port or DEFAULT_PORTS[conn.kind]))
                if refused is not None:
                    self._log_throttled("via alias refused", addr, transport=conn.kind, reason=refused,
                                        sent_by=clip(f"{via.host}:{via.port or ''}", 80))
            self._on_request(msg, addr)

    def _admit_before_parse(self, data: bytes, addr: Addr) -> bool:
        """Source checks that cost no parsing: a banned source is dropped; a request-like datagram from outside
        the ACL is charged to the source's rate limit first (responses may come from any peer we called)."""
        now = time.monotonic()
        if self.limiter.banned(addr[0], now):
            return False
        if data.startswith(b"SIP/2.0 ") or self._source_allowed(addr[0]):
            return True
        if self.limiter.admit(addr[0], now):
            return True
        self._log_limited(addr[0], "-")
        return False

    def _on_source_banned(self, source: str, reason: str) -> None:
        log.warning("source banned", extra={"fields": {"src": source, "reason": reason,
                                                       "ban_s": self.limiter.ban_s}})

    def _log_throttled(self, message: str, addr: Addr, **fields: object) -> None:
        """Log ``message`` at most once per 5 s, reporting how many were suppressed in between."""
        suppressed = self._log_throttle.admit(message, time.monotonic())
        if suppressed is not None:
            log.warning(message, extra={"fields": {"src": f"{addr[0]}:{addr[1]}", **fields,
                                                   "suppressed": suppressed}})

    def _reply_to_parse_error(self, err: SipParseError, addr: Addr, size: int, kind: str) -> None:
        self._log_throttled("bad SIP message dropped" if err.status is None else "bad SIP message rejected", addr,
                            bytes=size, reason=clip(err.reason), status=err.status)
        if err.status is None or not err.is_request or err.headers is None or err.method == "ACK":
            return
        resp = build_response(err.headers, err.status, f"{default_reason(err.status)} ({err.reason})"[:120])
        if resp is not None:
            self._count(err.status)
            self.send_on(resp.serialize(), addr, kind)

    def _count(self, status: int) -> None:
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1

    def _on_response(self, resp: SipResponse, addr: Addr) -> None:
        vias = resp.headers.values("Via")
        if len(vias) != 1:
            self._log_drop("response with %d Via values dropped (RFC 3261 §8.1.3.3)" % len(vias), addr)
            return
        try:
            branch = resp.top_via.branch or ""
            _, method = resp.cseq
        except SipParseError:
            return
        tx = self._client_txs.get((branch, method))
        if tx is None:
            self._log_drop(f"stray {resp.status} response for {method} dropped", addr)
            return
        tx.on_response(resp)

    def _log_drop(self, message: str, addr: Addr) -> None:
        self.stats.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log > 1.0:
            self._last_drop_log = now
            log.info(message, extra={"fields": {"src": f"{addr[0]}:{addr[1]}"}})

    def _log_limited(self, source: str, method: str) -> None:
        now = time.monotonic()
        suppressed = self._log_throttle.admit("rate-limited", now)  # one line per 5 s for all sources together
        if suppressed is not None:
            log.warning("requests from source rate-limited", extra={"fields": {
                "src": source, "method": clip(method, 20), "banned": self.limiter.banned(source, now),
                "refused_total": self.limiter.refused, "suppressed": suppressed}})

    def _source_allowed(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip.version == n.version and ip in n for n in self.acl)

    def _on_request(self, req: SipRequest, addr: Addr) -> None:
        method = req.method
        # Retransmissions and ACKs for non-2xx first: they belong to an existing server transaction.
        key = server_key(req)
        tx = self._server_txs.get(key)
        if tx is not None:
            tx.on_retransmission(req)
            return
        if method == "ACK":
            self._on_ack(req)
            return
        if method == "CANCEL":
            self._on_cancel(req, addr)
            return
        if not self.limiter.admit(addr[0], time.monotonic(), req.headers.get("User-Agent")):
            self._log_limited(addr[0], method)
            return  # dropped: answering a flood would amplify it
        if not self._source_allowed(addr[0]):
            self.stats.rejected_acl += 1
            self._respond_stateless(req, addr, 403, "Forbidden (source not allowed)")
            self._log_throttled("request from disallowed source", addr, method=clip(method, 20))
            return
        # Unknown methods: 501, known ones nobody handles: 405, both with Allow built from the table.
        rejection = check_request(req, supported_methods=self.supported_methods,
                                  supported_extensions=SUPPORTED_EXTENSIONS,
                                  accepted_content_types=ACCEPTED_CONTENT_TYPES)
        if rejection is not None:
            self._respond_stateless(req, addr, rejection.status, rejection.reason, rejection.extra_headers)
            return
        incoming = _Incoming(self, req, addr)
        if req.to.tag and method in DIALOG_METHODS:
            self.handlers.notify(incoming)
            self._on_in_dialog(req, addr)
        elif not self.handlers.dispatch(incoming):  # a responder unsubscribed between check and dispatch
            self._respond_stateless(req, addr, 405, headers=[("Allow", self.allow_header)])

    def _new_server_tx(self, req: SipRequest, addr: Addr, on_ack_timeout: Callable[[ServerTransaction], None]
                       | None = None) -> ServerTransaction:
        kind = req.arrival.transport if req.arrival is not None else self.kind_for(addr)
        tx = ServerTransaction(req, addr, _ReplyPath(self, kind), self.timers, self._server_tx_done, on_ack_timeout,
                               reliable=kind != "udp")
        self._server_txs[tx.key] = tx
        return tx

    def _server_tx_done(self, tx: ServerTransaction) -> None:
        self._server_txs.pop(tx.key, None)

    def _respond_stateless(self, req: SipRequest, addr: Addr, status: int, reason: str | None = None,
                           headers: list[tuple[str, str]] | None = None, *, contact: bool = False) -> None:
        """Respond inside a server transaction so retransmissions get the same answer."""
        self._count(status)
        tx = self._new_server_tx(req, addr)
        tx.respond(self.make_response(req, status, reason, to_tag=None if req.to.tag else new_tag(),
                                      headers=headers, contact=contact))

    def call_setup(self, on_call: InviteHandler | None) -> Responder:
        """The INVITE responder: digest guard, admission (draining, call limits, load), 100 Trying, a
        :class:`SipCall` handed to ``on_call`` in a task of its own (no ``on_call``: 480)."""
        def setup(incoming: Incoming) -> None:
            req, addr = incoming.request, incoming.source
            if self.guard is not None:
                admitted, challenge, reason = self.guard.check(req, addr[0])
                if not admitted:
                    log.info("INVITE challenged", extra={"fields": {"src": addr[0], "reason": reason}})
                    incoming.respond(401, headers=challenge)
                    return
            self._on_new_invite(req, addr, on_call)

        return setup

    def _on_new_invite(self, req: SipRequest, addr: Addr, on_call: InviteHandler | None) -> None:
        if not self.accepting:
            self._respond_stateless(req, addr, 503, "Service Unavailable (shutting down)",
                                    headers=[("Retry-After", "30")])
            return
        if len(self._calls) + self.other_calls() >= self.limits.max_calls:
            self._respond_stateless(req, addr, 503, "Service Unavailable (call limit)",
                                    headers=[("Retry-After", "5")])
            return
        if self._per_source.get(addr[0], 0) >= self.limits.max_calls_per_source:
            self._respond_stateless(req, addr, 486, "Busy Here (too many calls from this source)")
            return
        admission = self.limits.admission
        overload = admission.refusal(self.pending_setups, self.media_lag())
        if overload is not None:
            self._respond_stateless(req, addr, 503, f"Service Unavailable ({overload})",
                                    headers=[("Retry-After", str(admission.retry_after_s))])
            self._log_throttled("call setup refused", addr, reason=overload)
            return
        session_timer = negotiate_session_timer(req.headers, self.session_timers)
        if isinstance(session_timer, TooSmall):  # RFC 4028 §8.1: 422 names the smallest interval we accept
            self._respond_stateless(req, addr, 422, headers=[("Min-SE", str(session_timer.min_se))])
            return
        call_holder: list[SipCall] = []
        def on_ack_timeout(_tx: ServerTransaction) -> None:
            if call_holder:
                call_holder[0].ack_timeout()

        tx = self._new_server_tx(req, addr, on_ack_timeout=on_ack_timeout)
        tx.respond(self.make_response(req, 100))
        call = SipCall(self, req, addr, inbound=True, server_tx=tx)
        call.session_timer = session_timer
        call_holder.append(call)
        self._calls.add(call)
        self._pending_invites[tx.key] = call
        self._per_source[addr[0]] = self._per_source.get(addr[0], 0) + 1
        self.stats.calls_total += 1
        if on_call is None:
            call.reject(480, "No application")
            return
        self.spawn(self._run_invite_handler(call, on_call))

    async def _run_invite_handler(self, call: SipCall, on_call: InviteHandler) -> None:
        try:
            await on_call(call)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one call's crash never takes down the others
            log.exception("call handler crashed", extra={"fields": {"call_id": call.call_id}})
            if call.state in (CallState.INCOMING, CallState.RINGING):
                call.reject(500, "Server Internal Error")
            else:
                await call.hangup("handler crashed")

    def _on_ack(self, req: SipRequest) -> None:
        call = self._dialogs.get((req.call_id, req.to.tag or "", req.from_.tag or ""))
        if call is not None:
            call.ack_received(req.cseq[0])
            return
        self._log_drop("ACK matching no dialog dropped", ("-", 0))

    def _on_cancel(self, req: SipRequest, addr: Addr) -> None:
        invite_key = server_key(_as_method(req, "INVITE"))
        call = self._pending_invites.get(invite_key)
        if call is None:
            self._respond_stateless(req, addr, 481, "Call/Transaction Does Not Exist")
            return
        tx = self._new_server_tx(req, addr)
        tx.respond(self.make_response(req, 200, to_tag=call.local_tag))
        call.cancelled_by_peer()

    def _on_in_dialog(self, req: SipRequest, addr: Addr) -> None:
        call = self._dialogs.get((req.call_id, req.to.tag or "", req.from_.tag or ""))
        if call is None or call.dialog is None:
            log.info("in-dialog %s for unknown dialog", req.method,
                     extra={"fields": {"src": f"{addr[0]}:{addr[1]}", "call_id": req.call_id}})
            self._respond_stateless(req, addr, 481, "Call/Transaction Does Not Exist")
            return
        if not call.dialog.accept_remote_cseq(req):
            self._respond_stateless(req, addr, 500, "CSeq out of order")
            return
        call.receive(req, self._new_server_tx(req, addr))


@dataclass(frozen=True)
class _ReplyPath:
    """A server transaction's sender: its responses leave on the transport its request arrived on."""

    ua: UserAgent
    kind: str

    def send(self, data: bytes, addr: Addr) -> None:
        self.ua.send_on(data, addr, self.kind)


@dataclass(frozen=True)
class _Incoming:
    """A request handed to the handler table (handlers.Incoming)."""

    ua: UserAgent
    request: SipRequest
    source: Addr

    def respond(self, status: int, reason: str | None = None, headers: list[tuple[str, str]] | None = None, *,
                contact: bool = False) -> None:
        self.ua._respond_stateless(self.request, self.source, status, reason, headers,  # noqa: SLF001
                                   contact=contact)


def _min_se(resp: SipResponse) -> int | None:
    """The Min-SE of a 422 (Session Interval Too Small), if usable (a number up to a day)."""
    value = (resp.headers.get("Min-SE") or "").split(";")[0].strip()
    return int(value) if value.isdigit() and 0 < int(value) <= 86400 else None


def _no_dialog(incoming: Incoming) -> None:
    """The default for a dialog method outside any dialog (§12.2.2)."""
    incoming.respond(481, "Call/Transaction Does Not Exist")


def _as_method(req: SipRequest, method: str) -> SipRequest:
    clone = SipRequest(headers=req.headers, body=req.body, method=method, uri=req.uri)
    return clone


def uri_transport(scheme: str, param: str | None, default: TransportName | None = None) -> TransportName:
    """The transport a URI asks for (RFC 3261 §19.1.1, RFC 3263 §4.1): sips → TLS, else ``transport=``."""
    if scheme.lower() == "sips":
        return "tls"
    value = (param or "").lower()
    if value in ("udp", "tcp", "tls"):
        return value  # type: ignore[return-value]
    return default or "udp"
