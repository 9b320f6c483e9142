"""A SIP call leg (INVITE dialog usage) as the application sees it: answer, hang up, DTMF, hold, REFER.

A call talks to its user agent only through :class:`CallTransport`; what crosses that interface:

* call → UA: build a response (``make_response``, ``options_response``, ``allow_header``), send an in-dialog
  request and await its final response (``send_request``), send the ACK for a 2xx (``send_ack``), CANCEL or
  abandon its outbound INVITE (``cancel_invite``, ``abandon_invite``), run a task the UA cancels at shutdown
  (``spawn``), announce its dialog (``register_dialog``) and its end (``unregister_call``); read ``timers`` (T1 for
  the ACK wait) and ``contact_uri`` (Referred-By, NOTIFY Contact).
* UA → call, public methods only: ``receive`` (an in-dialog request in its server transaction), ``ack_received``,
  ``cancelled_by_peer``, ``ack_timeout``; for an outbound INVITE ``provisional``, ``confirmed`` and ``failed``.

The application subscribes to call events with :attr:`SipCall.events` (several subscribers each) and answers
re-INVITE offers and REFERs with the single deciders ``on_reinvite`` / ``on_refer``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Awaitable, Callable, Coroutine, Protocol

from .dialog import Dialog, new_tag
from .hooks import Hook, Removed
from .identity import CallerIdentity, Redirection, caller_identity, redirection
from .message import Arrival, SipRequest, SipResponse
from .prack import EarlyDialogs, ReliableProvisionals, requires_100rel
from .session_timer import (Refresher, SessionRefresh, SessionTimer, SessionTimerPolicy, TooSmall,
                            as_peer_request, from_response, negotiate)
from .transaction import ServerTransaction, Timers, TransactionTimeout

log = logging.getLogger("voicebot.sip.call")

Addr = tuple[str, int]

INFO_DTMF_TYPES = ("application/dtmf-relay", "application/dtmf")
VALID_DTMF = set("0123456789*#ABCD")


class CallState(Enum):
    INCOMING = "incoming"
    CALLING = "calling"
    RINGING = "ringing"
    ANSWERING = "answering"
    CONFIRMED = "confirmed"
    ENDED = "ended"


class Progress(IntEnum):
    """How far an outbound INVITE got before its final response; it only ever goes up (a 100 after a 180 keeps
    RINGING). Ordered: ``progress >= Progress.TRYING`` means a 1xx came, ``>= Progress.RINGING`` a 180/183."""

    NONE = 0  # nothing answered yet: the INVITE can only be abandoned, not CANCELled (RFC 3261 §9.1)
    TRYING = 1  # a 1xx other than 180/183 (100 Trying, 181, 182): a hop works on it; a 408 may be a dead next hop
    RINGING = 2  # a 180/183 without SDP: the far end was reached (a later 408 is the callee not answering)
    EARLY_MEDIA = 3  # a 180/183 with an SDP answer: reached, and its audio flows before the answer


def progress_of(resp: SipResponse) -> Progress:
    """The progress a provisional response to an INVITE shows."""
    if resp.status not in (180, 183):
        return Progress.TRYING
    return Progress.EARLY_MEDIA if resp.body and resp.content_type == "application/sdp" else Progress.RINGING


def parse_info_dtmf(content_type: str, body: bytes) -> str | None:
    """Digit from a SIP INFO body (application/dtmf-relay ``Signal=5`` or application/dtmf ``5``)."""
    text = body.decode("utf-8", "replace").strip()
    if content_type == "application/dtmf-relay":
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip().lower() == "signal":
                digit = value.strip().upper()
                return digit if digit in VALID_DTMF else None
        return None
    if content_type == "application/dtmf":
        digit = text.upper()
        if digit in VALID_DTMF:
            return digit
        if digit.isdigit() and int(digit) in (10, 11):  # RFC 4733 event codes some UAs send
            return "*" if digit == "10" else "#"
    return None


class CallTransport(Protocol):
    """Everything a :class:`SipCall` needs from its user agent (see the module docstring)."""

    @property
    def timers(self) -> Timers: ...

    @property
    def contact_uri(self) -> str: ...

    @property
    def allow_header(self) -> str: ...

    @property
    def session_timers(self) -> SessionTimerPolicy: ...

    def trusted_identity(self, host: str, arrival: Arrival) -> bool: ...

    def make_response(self, req: SipRequest, status: int, reason: str | None = None, *, to_tag: str | None = None,
                      headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                      content_type: str | None = None, contact: bool = False) -> SipResponse: ...

    def options_response(self, req: SipRequest) -> SipResponse: ...

    async def send_request(self, req: SipRequest, addr: Addr | None = None) -> SipResponse: ...

    def send_ack(self, dialog: Dialog, invite: SipRequest, response: SipResponse) -> None: ...

    async def cancel_invite(self, invite: SipRequest, addr: Addr) -> None: ...

    def abandon_invite(self, invite: SipRequest) -> None: ...

    def spawn(self, coro: Coroutine[object, object, None]) -> "asyncio.Task[None]": ...

    def register_dialog(self, call: "SipCall") -> None: ...

    def unregister_call(self, call: "SipCall") -> None: ...


@dataclass
class CallEvents:
    """What a call reports, each with any number of subscribers (``call.events.dtmf.subscribe(fn)``)."""

    dtmf: Hook[[str, str]] = field(default_factory=lambda: Hook("dtmf"))  # (digit, "info")
    notify: Hook[[int, bytes]] = field(default_factory=lambda: Hook("notify"))  # REFER progress (status, sipfrag)
    ended: Hook[["SipCall"]] = field(default_factory=lambda: Hook("ended"))  # once, after the state is ENDED

    def clear(self) -> None:
        self.dtmf.clear()
        self.notify.clear()
        self.ended.clear()


class SipCall:
    """One call leg. Inbound legs are created by the UA; outbound by :meth:`UserAgent.invite`."""

    on_dtmf = Removed("call.events.dtmf.subscribe(fn)")
    on_notify = Removed("call.events.notify.subscribe(fn)")
    on_ended = Removed("call.events.ended.subscribe(fn)")

    def __init__(self, transport: CallTransport, invite: SipRequest, addr: Addr, *, inbound: bool,
                 server_tx: ServerTransaction | None = None) -> None:
        self.ua = transport
        self.invite = invite
        self.addr = addr
        self.inbound = inbound
        self.server_tx = server_tx
        self.local_tag = new_tag() if inbound else (invite.from_.tag or "")
        self.dialog: Dialog | None = None
        self.state = CallState.INCOMING if inbound else CallState.CALLING
        self.remote_sdp: bytes = invite.body if inbound else b""
        self.local_sdp: bytes = b""
        self.started_at = time.time()
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.end_reason = ""
        self.ended = asyncio.Event()
        self.events = CallEvents()
        # Deciders, one each: the SDP answer to a re-INVITE offer (None: 488), whether a REFER is accepted.
        self.on_reinvite: Callable[[bytes], Awaitable[bytes | None]] | None = None
        self.on_refer: Callable[[str, SipRequest], bool] | None = None
        self._refer_subscribed = False
        self._reinvite_txs: dict[int, ServerTransaction] = {}
        self.progress = Progress.NONE  # an outbound leg's 1xx so far (see Progress)
        # Who calls (P-Asserted-Identity / Remote-Party-ID believed only from a trusted source) and whom they
        # first dialled (Diversion / History-Info); outbound legs: the From we sent, no redirection.
        self.identity: CallerIdentity = caller_identity(
            invite.headers, inbound and transport.trusted_identity(addr[0], self.arrival))
        self.redirection: Redirection | None = redirection(invite.headers) if inbound else None
        self.session_timer: SessionTimer | None = None  # agreed at setup (RFC 4028), set by the UA
        # the methods the peer allows (its INVITE's Allow, or its 2xx's on an outbound leg): UPDATE refreshes
        self.peer_allow: set[str] = {m.strip().upper() for m in invite.headers.values("Allow")} if inbound else set()
        self.session_refresh: SessionRefresh | None = None  # its clock, running once the call is confirmed
        self._session_task: asyncio.Task[None] | None = None
        # Outbound legs before the answer: early dialogs acknowledged with PRACK, early media (183 + SDP)
        self.early = EarlyDialogs()
        self.early_sdp: bytes = b""
        self.on_early_media: Callable[[bytes], None] | None = None
        # Inbound calls whose INVITE requires 100rel: our 180/183 sent reliably, the 2xx held until PRACKed
        self.reliable: ReliableProvisionals | None = None
        if inbound and server_tx is not None and requires_100rel(invite):
            self.reliable = ReliableProvisionals(server_tx.respond, transport.timers.t1, self._unacknowledged)

    # ------------------------------------------------------------------ identity
    @property
    def call_id(self) -> str:
        return self.invite.call_id

    @property
    def arrival(self) -> Arrival:
        """How an inbound INVITE reached us (transport, TLS peer names); an outbound leg's: unknown (``""``)."""
        return self.invite.arrival or Arrival("")

    @property
    def from_header(self) -> str:
        return self.invite.headers.get("From") or ""

    @property
    def to_header(self) -> str:
        return self.invite.headers.get("To") or ""

    @property
    def to_uri_user(self) -> str | None:
        """The dialled number: the Request-URI's user part (else the To URI's)."""
        from .uri import parse_uri

        try:
            return parse_uri(self.invite.uri).user or self.invite.to.uri.user
        except Exception:  # noqa: BLE001 - tel: or odd URIs: no user part
            return None

    @property
    def from_uri_user(self) -> str | None:
        try:
            return self.invite.from_.uri.user
        except Exception:  # noqa: BLE001
            return None

    @property
    def duration(self) -> float:
        if self.answered_at is None:
            return 0.0
        return (self.ended_at or time.time()) - self.answered_at

    # ------------------------------------------------------------------ inbound: answer / reject
    def ringing(self) -> None:
        self.send_provisional(180)

    def send_provisional(self, status: int = 183, sdp: bytes = b"") -> bool:
        """Send a provisional (180 Ringing, 183 Session Progress with early-media ``sdp``); reliably when the
        caller requires 100rel (RFC 3262). False when nothing was sent (answered, ended, or an earlier
        reliable provisional still awaits its PRACK)."""
        if self.server_tx is None or self.state not in (CallState.INCOMING, CallState.RINGING):
            return False
        resp = self.ua.make_response(self.invite, status, to_tag=self.local_tag, contact=True, body=sdp,
                                     content_type="application/sdp" if sdp else None)
        if self.reliable is not None:
            if self.dialog is None:  # the early dialog PRACKs arrive in (§12.1.1, RFC 3262 §3)
                self.dialog = Dialog.from_incoming_invite(self.invite, self.local_tag, self.addr)
                self.ua.register_dialog(self)
            if not self.reliable.send(resp):
                return False
        else:
            self.server_tx.respond(resp)
        if sdp:
            self.local_sdp = sdp
        self.state = CallState.RINGING
        return True

    def _unacknowledged(self) -> None:
        """64*T1 passed without a PRACK for our reliable provisional: 5xx to the INVITE (RFC 3262 §3)."""
        self.reject(504, "Server Time-out (provisional response not acknowledged)")

    async def _reliable_acknowledged(self) -> bool:
        """Wait until no reliable provisional is outstanding (the 2xx must not overtake it); False if the call
        ended meanwhile (the caller never PRACKed, or gave up)."""
        if self.reliable is None:
            return True
        acked = asyncio.ensure_future(self.reliable.acknowledged.wait())
        ended = asyncio.ensure_future(self.ended.wait())
        try:
            await asyncio.wait({acked, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            acked.cancel()
            ended.cancel()
        return self.state in (CallState.INCOMING, CallState.RINGING)

    def reject(self, status: int, reason: str | None = None, headers: list[tuple[str, str]] | None = None) -> None:
        if self.server_tx is None or self.state not in (CallState.INCOMING, CallState.RINGING):
            return
        self.server_tx.respond(self.ua.make_response(self.invite, status, reason, to_tag=self.local_tag,
                                                     headers=headers))
        self._finish(f"rejected {status}")

    async def answer(self, sdp: bytes, ack_timeout: float | None = None) -> bool:
        """Send 200 OK with ``sdp``; True once the ACK arrives, False if the caller gave up."""
        if self.server_tx is None or self.state not in (CallState.INCOMING, CallState.RINGING):
            return False
        if not await self._reliable_acknowledged():
            return False
        self.local_sdp = sdp
        self.state = CallState.ANSWERING
        if self.dialog is None:  # else the early dialog of a reliable provisional goes on
            self.dialog = Dialog.from_incoming_invite(self.invite, self.local_tag, self.addr)
        self.ua.register_dialog(self)
        timer_headers = self.session_timer.response_headers() if self.session_timer is not None else []
        ok = self.ua.make_response(self.invite, 200, to_tag=self.local_tag, contact=True, body=sdp,
                                   content_type="application/sdp", headers=timer_headers)
        self.server_tx.respond(ok)
        self.answered_at = time.time()
        assert self.server_tx.acked is not None
        timeout = ack_timeout if ack_timeout is not None else 64 * self.ua.timers.t1
        try:
            await asyncio.wait_for(self.server_tx.acked.wait(), timeout)
        except asyncio.TimeoutError:
            log.warning("no ACK for 200 OK", extra={"fields": {"call_id": self.call_id}})
            await self.hangup("no ACK")
            return False
        if self.state is CallState.ANSWERING:
            self.state = CallState.CONFIRMED
            self._start_session_timer()
        return self.state is CallState.CONFIRMED

    def cancelled_by_peer(self) -> None:
        """CANCEL matched this INVITE before it was answered (§9.2)."""
        if self.server_tx is not None and self.state in (CallState.INCOMING, CallState.RINGING):
            self.server_tx.respond(self.ua.make_response(self.invite, 487, to_tag=self.local_tag))
            self._finish("cancelled")

    # ------------------------------------------------------------------ in-dialog requests received
    def receive(self, req: SipRequest, tx: ServerTransaction) -> None:
        """An in-dialog request in its new server transaction (the UA checked the dialog and the CSeq)."""
        if req.method == "INVITE":
            self._reinvite_txs[req.cseq[0]] = tx
            tx.respond(self.ua.make_response(req, 100))
        self.ua.spawn(self._handle_request(req, tx))

    def ack_received(self, cseq: int) -> None:
        """An ACK in this dialog: it confirms our 2xx to the INVITE or to a re-INVITE with ``cseq``."""
        if self.server_tx is not None and self.server_tx.request.cseq[0] == cseq:
            self.server_tx.on_ack()
            return
        reinvite_tx = self._reinvite_txs.pop(cseq, None)
        if reinvite_tx is not None:
            reinvite_tx.on_ack()  # stops the 2xx retransmissions of a re-INVITE

    async def _handle_request(self, req: SipRequest, tx: ServerTransaction) -> None:
        assert self.dialog is not None
        method = req.method
        if method == "BYE":
            tx.respond(self.ua.make_response(req, 200))
            if self.server_tx is not None and self.state in (CallState.INCOMING, CallState.RINGING):
                # a BYE in the early dialog (RFC 3261 §15): the INVITE still owes its final response
                self.server_tx.respond(self.ua.make_response(self.invite, 487, to_tag=self.local_tag))
            self._finish("remote hangup")
        elif method == "INFO":
            ctype = req.content_type
            if not req.body:
                tx.respond(self.ua.make_response(req, 200))  # keep-alive INFO
                return
            if ctype not in INFO_DTMF_TYPES:
                tx.respond(self.ua.make_response(req, 415, headers=[("Accept", ", ".join(INFO_DTMF_TYPES))]))
                return
            digit = parse_info_dtmf(ctype, req.body)
            if digit is None:
                tx.respond(self.ua.make_response(req, 400, "Bad DTMF body"))
                return
            tx.respond(self.ua.make_response(req, 200))
            self.events.dtmf.emit(digit, "info")
        elif method == "INVITE":
            await self._handle_reinvite(req, tx)
        elif method == "UPDATE":
            agreed = self._refresh_terms(req, tx)
            if agreed is not False:
                tx.respond(self.ua.make_response(req, 200, contact=True, headers=self._refreshed(agreed)))
        elif method == "OPTIONS":
            tx.respond(self.ua.options_response(req))
        elif method == "PRACK":
            acked = self.reliable is not None and self.reliable.prack(req.headers.get("RAck"), self.invite.cseq)
            tx.respond(self.ua.make_response(req, 200 if acked else 481))
            log.info("PRACK received", extra={"fields": {"call_id": self.call_id, "matched": acked,
                                                         "rack": req.headers.get("RAck")}})
        elif method == "REFER":
            self._handle_refer(req, tx)
        elif method == "NOTIFY":
            tx.respond(self.ua.make_response(req, 200))
            status = _sipfrag_status(req.body)
            if status is not None:
                self.events.notify.emit(status, req.body)
        else:
            tx.respond(self.ua.make_response(req, 405, headers=[("Allow", self.ua.allow_header)]))

    async def _handle_reinvite(self, req: SipRequest, tx: ServerTransaction) -> None:
        agreed = self._refresh_terms(req, tx)
        if agreed is False:
            return
        if not req.body:
            # Offerless re-INVITE: we offer our current SDP again.
            answer: bytes | None = self.local_sdp
        elif self.on_reinvite is None:
            answer = None
        else:
            try:
                answer = await self.on_reinvite(req.body)
            except Exception:  # noqa: BLE001
                log.exception("re-INVITE handler failed")
                answer = None
        if answer is None:
            tx.respond(self.ua.make_response(req, 488))
            return
        self.local_sdp = answer
        if self.dialog is not None:
            contacts = req.headers.values("Contact")
            if contacts:
                from .uri import parse_name_addr
                self.dialog.remote_target = str(parse_name_addr(contacts[0]).uri)
        tx.respond(self.ua.make_response(req, 200, contact=True, body=answer, content_type="application/sdp",
                                         headers=self._refreshed(agreed)))

    # ------------------------------------------------------------------ session timer (RFC 4028)
    def _refresh_terms(self, req: SipRequest, tx: ServerTransaction) -> SessionTimer | None | bool:
        """The session timer a re-INVITE/UPDATE asks for; False once a 422 answered it (interval too small)."""
        if self.session_refresh is None:
            return None
        agreed = negotiate(req.headers, self.ua.session_timers)
        if isinstance(agreed, TooSmall):
            tx.respond(self.ua.make_response(req, 422, headers=[("Min-SE", str(agreed.min_se))]))
            return False
        return agreed

    def _refreshed(self, agreed: SessionTimer | None | bool) -> list[tuple[str, str]]:
        """A 2xx to a refresh goes out: restart the clock; the headers that 2xx carries."""
        if not isinstance(agreed, SessionTimer) or self.session_refresh is None:
            return []
        self.session_refresh.refreshed(agreed if self.inbound else as_peer_request(agreed))
        log.info("session refreshed by peer", extra={"fields": {"call_id": self.call_id,
                                                                "interval_s": agreed.interval,
                                                                "refresher": agreed.refresher}})
        return agreed.response_headers()

    def _start_session_timer(self) -> None:
        if self.session_timer is None or self.session_refresh is not None:
            return
        self.session_refresh = SessionRefresh(self.session_timer, self._send_refresh, self._session_expired,
                                              local="uas" if self.inbound else "uac")
        self._session_task = self.ua.spawn(self.session_refresh.run())

    async def _send_refresh(self, timer: SessionTimer) -> SessionTimer | None:
        """As refresher: UPDATE when the peer allows it, else a re-INVITE with our current SDP (§7.4)."""
        headers = timer.request_headers(self.ua.session_timers.min_se_s)
        allowed = self.peer_allow
        if "UPDATE" in allowed:
            resp = await self.send_in_dialog("UPDATE", headers=headers)
        else:
            resp = await self.reinvite(self.local_sdp, headers=headers)
        status = resp.status if resp is not None else 408
        log.info("session refresh sent", extra={"fields": {"call_id": self.call_id, "status": status,
                                                           "method": "UPDATE" if "UPDATE" in allowed else "INVITE"}})
        if status in (408, 481):
            return None  # the dialog is gone (§10)
        local: Refresher = "uas" if self.inbound else "uac"
        return from_response(resp.headers, timer, local) if resp is not None and 200 <= status < 300 else timer

    async def _session_expired(self, reason: str) -> None:
        log.warning(reason, extra={"fields": {"call_id": self.call_id}})
        await self.hangup(reason)

    def _handle_refer(self, req: SipRequest, tx: ServerTransaction) -> None:
        targets = req.headers.get_all("Refer-To")
        if len(targets) != 1:
            tx.respond(self.ua.make_response(req, 400, "Exactly one Refer-To required"))
            return
        accepted = bool(self.on_refer and self.on_refer(targets[0], req))
        if not accepted:
            tx.respond(self.ua.make_response(req, 403, "Transfer target not allowed"))
            return
        tx.respond(self.ua.make_response(req, 202, contact=True))
        self._refer_subscribed = True
        self.ua.spawn(self.notify_refer(100, "Trying", terminated=False))

    # ------------------------------------------------------------------ requests we send
    async def send_in_dialog(self, method: str, *, body: bytes = b"", content_type: str | None = None,
                             headers: list[tuple[str, str]] | None = None) -> SipResponse | None:
        if self.dialog is None or self.state is CallState.ENDED and method != "BYE":
            return None
        req = self.dialog.create_request(method, body=body, content_type=content_type, extra_headers=headers)
        try:
            return await self.ua.send_request(req, self.dialog.peer_addr)
        except TransactionTimeout:
            log.warning("%s timed out", method, extra={"fields": {"call_id": self.call_id}})
            return None

    async def hangup(self, reason: str = "local hangup") -> None:
        """End the call however far it got: BYE, CANCEL or a final error response."""
        if self.state is CallState.ENDED:
            return
        if self.inbound and self.state in (CallState.INCOMING, CallState.RINGING):
            self.reject(480, "Temporarily Unavailable")
            return
        if not self.inbound and self.state in (CallState.CALLING, CallState.RINGING):
            if self.progress >= Progress.TRYING:
                await self.ua.cancel_invite(self.invite, self.addr)
            else:
                self.ua.abandon_invite(self.invite)  # nothing answered: a CANCEL would wait out timer F for nothing
            self._finish(reason)
            return
        self._finish(reason)
        if self.dialog is not None:
            await self.send_in_dialog("BYE")

    async def send_info_dtmf(self, digit: str, duration_ms: int = 160) -> bool:
        resp = await self.send_in_dialog("INFO", body=f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode(),
                                         content_type="application/dtmf-relay")
        return resp is not None and 200 <= resp.status < 300

    async def reinvite(self, sdp: bytes, headers: list[tuple[str, str]] | None = None) -> SipResponse | None:
        """Send a re-INVITE (hold/unhold, session refresh); the UA sends the ACK for a 2xx."""
        if self.dialog is None:
            return None
        req = self.dialog.create_request("INVITE", body=sdp, content_type="application/sdp", extra_headers=headers)
        try:
            resp = await self.ua.send_request(req, self.dialog.peer_addr)
        except TransactionTimeout:
            return None
        if 200 <= resp.status < 300:
            self.local_sdp = sdp
            self.remote_sdp = resp.body or self.remote_sdp
            self.ua.send_ack(self.dialog, req, resp)
        return resp

    async def refer(self, target: str, headers: list[tuple[str, str]] | None = None) -> int:
        """Blind transfer: send REFER; returns the REFER's status (202 = accepted)."""
        extra = [("Refer-To", f"<{target}>"), ("Referred-By", f"<{self.ua.contact_uri}>")] + (headers or [])
        resp = await self.send_in_dialog("REFER", headers=extra)
        return resp.status if resp is not None else 408

    async def notify_refer(self, status: int, reason: str, terminated: bool) -> None:
        """Report a REFER's progress to the referrer with a message/sipfrag NOTIFY (RFC 3515 §2.4.5)."""
        if not self._refer_subscribed:
            return
        state = "terminated;reason=noresource" if terminated else "active;expires=60"
        await self.send_in_dialog("NOTIFY", body=f"SIP/2.0 {status} {reason}\r\n".encode(),
                                  content_type="message/sipfrag;version=2.0",
                                  headers=[("Event", "refer"), ("Subscription-State", state),
                                           ("Contact", f"<{self.ua.contact_uri}>")])

    # ------------------------------------------------------------------ outbound INVITE progress (from the UA)
    def provisional(self, resp: SipResponse) -> bool:
        """A 1xx to our INVITE (the call's progress goes up to it); True when it moved the call to RINGING
        (180/183)."""
        self.progress = max(self.progress, progress_of(resp))
        if resp.status in (180, 183) and self.state is CallState.CALLING:
            self.state = CallState.RINGING
            return True
        return False

    def confirmed(self, dialog: Dialog, remote_sdp: bytes, response: SipResponse | None = None) -> None:
        """The 2xx to our INVITE arrived: the dialog is confirmed; the session timer (if one was agreed) runs."""
        self.dialog = dialog
        self.remote_sdp = remote_sdp
        self.state = CallState.CONFIRMED
        self.answered_at = time.time()
        if response is not None:
            self.peer_allow = {m.strip().upper() for m in response.headers.values("Allow")}
        self.ua.register_dialog(self)
        self._start_session_timer()

    def failed(self, reason: str) -> None:
        """Our INVITE ended without a 2xx (timeout or a final error response)."""
        self._finish(reason)

    # ------------------------------------------------------------------ lifecycle
    def _finish(self, reason: str) -> None:
        if self.state is CallState.ENDED:
            return
        self.state = CallState.ENDED
        self.end_reason = reason
        self.ended_at = time.time()
        self.ended.set()
        if self.reliable is not None:
            self.reliable.stop()
        if self._session_task is not None and self._session_task is not asyncio.current_task():
            self._session_task.cancel()
        self.ua.unregister_call(self)
        self.events.ended.emit(self)
        # Transactions may outlive the call by up to 64*T1: drop references to media and sessions now.
        self.events.clear()
        self.on_reinvite = self.on_refer = None
        self.on_early_media = None

    def ack_timeout(self) -> None:
        if self.state is CallState.ANSWERING:
            self.ua.spawn(self.hangup("no ACK"))


def _sipfrag_status(body: bytes) -> int | None:
    first = body.decode("utf-8", "replace").strip().split("\r\n")[0].split("\n")[0]
    parts = first.split(" ", 2)
    if len(parts) >= 2 and parts[0].startswith("SIP/") and parts[1].isdigit():
        return int(parts[1])
    return None
