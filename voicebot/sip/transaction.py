"""SIP transactions over unreliable transport (RFC 3261 §17, with the RFC 6026 'Accepted' state).

Each transaction owns its retransmission and timeout timers (timers A–K). The transaction user (the UA)
sees only final outcomes: responses for client transactions, ACK / timeout for server transactions.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Protocol

from .message import SipRequest, SipResponse

log = logging.getLogger("voicebot.sip.transaction")

BRANCH_COOKIE = "z9hG4bK"
Addr = tuple[str, int]


@dataclass(frozen=True)
class Timers:
    """RFC 3261 timer base values in seconds (T1 RTT estimate, T2 max retransmit interval, T4 max lifetime)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


class Sender(Protocol):
    def send(self, data: bytes, addr: Addr) -> None: ...


class State(Enum):
    TRYING = "trying"
    CALLING = "calling"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


def new_branch() -> str:
    return BRANCH_COOKIE + secrets.token_hex(8)


def server_key(req: SipRequest) -> tuple[object, ...]:
    """Key matching a request to its server transaction (§17.2.3, with the RFC 2543 fallback)."""
    via = req.top_via
    method = "INVITE" if req.method == "ACK" else req.method
    branch = via.branch or ""
    if branch.startswith(BRANCH_COOKIE):
        return (branch, via.host, via.port, method)
    # RFC 2543 peers: no magic cookie; match on dialog-ish fields.
    to_tag = req.to.tag if req.method != "ACK" else None
    return ("2543", req.uri if req.method != "ACK" else None, to_tag, req.from_.tag, req.call_id,
            req.cseq[0], str(via), method)


class ServerTransaction:
    """Server transaction: absorbs request retransmissions and retransmits final responses."""

    def __init__(self, request: SipRequest, addr: Addr, sender: Sender, timers: Timers,
                 on_terminated: Callable[["ServerTransaction"], None],
                 on_ack_timeout: Callable[["ServerTransaction"], None] | None = None,
                 reliable: bool = False) -> None:
        self.request = request
        self.addr = addr
        self.key = server_key(request)
        self.is_invite = request.method == "INVITE"
        self.state = State.PROCEEDING if self.is_invite else State.TRYING
        self._sender = sender
        self._timers = timers
        self._on_terminated = on_terminated
        self._on_ack_timeout = on_ack_timeout
        self._reliable = reliable  # TCP/TLS: no retransmission of non-2xx finals, timers I and J are zero
        self.last_response: SipResponse | None = None
        self._last_bytes: bytes | None = None
        self._retransmit: asyncio.TimerHandle | None = None
        self._timeout: asyncio.TimerHandle | None = None
        self._interval = timers.t1
        self._loop = asyncio.get_running_loop()
        self.acked = asyncio.Event() if self.is_invite else None

    # ------------------------------------------------------------------ TU -> transaction
    def respond(self, response: SipResponse) -> None:
        """Send a response; final responses move the state machine."""
        if self.state in (State.TERMINATED, State.CONFIRMED):
            return
        if self.state in (State.COMPLETED, State.ACCEPTED) and response.status >= 200:
            if not (self.state is State.ACCEPTED and 200 <= response.status < 300):
                return
        self.last_response = response
        self._last_bytes = response.serialize()
        self._sender.send(self._last_bytes, self.addr)
        if response.status < 200:
            if self.state is State.TRYING:
                self.state = State.PROCEEDING
            return
        if self.is_invite:
            self._interval = self._timers.t1
            if not self._reliable or response.status < 300:  # the 2xx is the TU's to resend (§13.3.1.4)
                self._arm_retransmit()
            # 2xx: RFC 6026 Accepted, retransmitted until the dialog sees the ACK (timer L = 64*T1).
            self.state = State.ACCEPTED if response.status < 300 else State.COMPLETED
            self._arm_timeout(64 * self._timers.t1, self._ack_timeout)
        else:
            self.state = State.COMPLETED
            self._arm_timeout(0 if self._reliable else 64 * self._timers.t1, self.terminate)  # timer J

    # ------------------------------------------------------------------ network -> transaction
    def on_retransmission(self, request: SipRequest) -> None:
        """A retransmitted request (or ACK for a non-2xx final) arrived."""
        if request.method == "ACK":
            self.on_ack()
            return
        if self._last_bytes is not None:
            self._sender.send(self._last_bytes, self.addr)

    def on_ack(self) -> None:
        if self.state is State.COMPLETED and self.is_invite:
            self.state = State.CONFIRMED
            self._cancel_retransmit()
            self._arm_timeout(0 if self._reliable else self._timers.t4, self.terminate)  # timer I
        elif self.state is State.ACCEPTED:
            self._cancel_retransmit()
            if self.acked is not None:
                self.acked.set()
            # keep absorbing retransmitted INVITEs for the rest of timer L
        if self.acked is not None:
            self.acked.set()

    # ------------------------------------------------------------------ timers
    def _arm_retransmit(self) -> None:
        self._cancel_retransmit()
        self._retransmit = self._loop.call_later(self._interval, self._do_retransmit)

    def _do_retransmit(self) -> None:
        if self.state not in (State.COMPLETED, State.ACCEPTED) or self._last_bytes is None:
            return
        self._sender.send(self._last_bytes, self.addr)
        self._interval = min(self._interval * 2, self._timers.t2)  # timer G
        self._arm_retransmit()

    def _cancel_retransmit(self) -> None:
        if self._retransmit is not None:
            self._retransmit.cancel()
            self._retransmit = None

    def _arm_timeout(self, delay: float, callback: Callable[[], None]) -> None:
        if self._timeout is not None:
            self._timeout.cancel()
        self._timeout = self._loop.call_later(delay, callback)

    def _ack_timeout(self) -> None:
        acked = self.acked is not None and self.acked.is_set()
        if not acked and self._on_ack_timeout is not None:
            try:
                self._on_ack_timeout(self)
            except Exception:  # noqa: BLE001 - a TU bug must not kill the transaction table
                log.exception("ack-timeout handler failed")
        self.terminate()

    def terminate(self) -> None:
        if self.state is State.TERMINATED:
            return
        self.state = State.TERMINATED
        self._cancel_retransmit()
        if self._timeout is not None:
            self._timeout.cancel()
        self._on_terminated(self)


class TransactionTimeout(Exception):
    """No final response within timer B / F (RFC 3261 §17.1.1.2, §17.1.2.2): treat as 408."""


class ClientTransaction:
    """Client transaction: retransmits the request, collects provisional and final responses."""

    def __init__(self, request: SipRequest, addr: Addr, sender: Sender, timers: Timers,
                 on_terminated: Callable[["ClientTransaction"], None],
                 on_provisional: Callable[[SipResponse], None] | None = None,
                 reliable: bool = False) -> None:
        self.request = request
        self.addr = addr
        self.branch = request.top_via.branch or new_branch()
        self.method = request.method
        self.key = (self.branch, self.method)
        self.is_invite = request.method == "INVITE"
        self.state = State.CALLING if self.is_invite else State.TRYING
        self._sender = sender
        self._timers = timers
        self._on_terminated = on_terminated
        self._on_provisional = on_provisional
        self._reliable = reliable
        self._loop = asyncio.get_running_loop()
        self.final: asyncio.Future[SipResponse] = self._loop.create_future()
        self._bytes = request.serialize()
        self._interval = timers.t1
        self._retransmit: asyncio.TimerHandle | None = None
        self._timeout: asyncio.TimerHandle | None = None
        self._ack_bytes: bytes | None = None
        self.extra_2xx: Callable[[SipResponse], None] | None = None

    def start(self) -> None:
        self._sender.send(self._bytes, self.addr)
        if not self._reliable:
            self._retransmit = self._loop.call_later(self._interval, self._do_retransmit)  # timer A / E
        self._timeout = self._loop.call_later(64 * self._timers.t1, self._on_timeout)  # timer B / F

    def _do_retransmit(self) -> None:
        if self.state not in (State.CALLING, State.TRYING, State.PROCEEDING):
            return
        if self.is_invite and self.state is State.PROCEEDING:
            return  # INVITE retransmission stops on a provisional response
        self._sender.send(self._bytes, self.addr)
        self._interval = self._interval * 2 if self.is_invite else min(self._interval * 2, self._timers.t2)
        if not self.is_invite and self.state is State.PROCEEDING:
            self._interval = self._timers.t2
        self._retransmit = self._loop.call_later(self._interval, self._do_retransmit)

    def _on_timeout(self) -> None:
        if not self.final.done():
            self.final.set_exception(TransactionTimeout(f"no final response to {self.method} from {self.addr}"))
        self.terminate()

    def transport_failed(self, reason: str) -> None:
        """The connection for this request could not be opened (RFC 3261 §8.1.3.1): end now, as a timeout."""
        if not self.final.done():
            self.final.set_exception(TransactionTimeout(f"{self.method} to {self.addr} not sent: {reason}"))
        self.terminate()

    def on_response(self, response: SipResponse) -> None:
        if response.status < 200:
            if self.state in (State.CALLING, State.TRYING):
                self.state = State.PROCEEDING
            if self._on_provisional is not None:
                try:
                    self._on_provisional(response)
                except Exception:  # noqa: BLE001
                    log.exception("provisional handler failed")
            return
        if self.state is State.ACCEPTED:
            if 200 <= response.status < 300 and self.extra_2xx is not None:
                self.extra_2xx(response)  # 2xx retransmission: the TU re-sends its ACK
            return
        if self.state is State.COMPLETED:
            if self._ack_bytes is not None:
                self._sender.send(self._ack_bytes, self.addr)
            return
        if self.state is State.TERMINATED:
            return
        self._cancel_timers()
        if not self.final.done():
            self.final.set_result(response)
        if self.is_invite:
            if response.status < 300:
                self.state = State.ACCEPTED
                self._timeout = self._loop.call_later(64 * self._timers.t1, self.terminate)  # timer M
            else:
                self._ack_bytes = build_non2xx_ack(self.request, response).serialize()
                self._sender.send(self._ack_bytes, self.addr)
                self.state = State.COMPLETED
                self._timeout = self._loop.call_later(0 if self._reliable else 32.0, self.terminate)  # timer D
        else:
            self.state = State.COMPLETED
            self._timeout = self._loop.call_later(0 if self._reliable else self._timers.t4, self.terminate)  # K

    def _cancel_timers(self) -> None:
        for handle in (self._retransmit, self._timeout):
            if handle is not None:
                handle.cancel()
        self._retransmit = self._timeout = None

    def terminate(self) -> None:
        if self.state is State.TERMINATED:
            return
        self.state = State.TERMINATED
        self._cancel_timers()
        if not self.final.done():
            self.final.set_exception(TransactionTimeout("transaction terminated"))
        self._on_terminated(self)


def build_non2xx_ack(request: SipRequest, response: SipResponse) -> SipRequest:
    """ACK for a non-2xx final response, part of the INVITE client transaction (§17.1.1.3)."""
    ack = SipRequest(method="ACK", uri=request.uri)
    h = ack.headers
    h.add("Via", request.headers.values("Via")[0])
    for name in ("Route",):
        for v in request.headers.get_all(name):
            h.add(name, v)
    h.add("Max-Forwards", "70")
    h.add("From", request.headers.get("From") or "")
    h.add("To", response.headers.get("To") or request.headers.get("To") or "")
    h.add("Call-ID", request.call_id)
    h.add("CSeq", f"{request.cseq[0]} ACK")
    return ack
