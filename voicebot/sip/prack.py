"""Reliable provisional responses (RFC 3262) on both sides of a call.

Outbound legs (UAC): a peer that sends ``Require: 100rel`` with an ``RSeq`` retransmits that provisional until
our PRACK arrives, and some gateways drop the call without it. Each early dialog (To tag) keeps its own RSeq
order; a retransmitted or out-of-order reliable provisional is not acknowledged again (§4). Early media (183
Session Progress with SDP, RFC 3960) is handed to the application before the call is answered.

Inbound calls (UAS): a caller whose INVITE says ``Require: 100rel`` gets every provisional (180/183) reliably
(:class:`ReliableProvisionals`: RSeq, retransmitted with T1 doubling until the PRACK, 5xx after 64*T1, §3);
with ``Supported: 100rel`` only, provisionals stay unreliable (allowed, and what every caller understands).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from .dialog import Dialog
from .message import SipRequest, SipResponse
from .transaction import TransactionTimeout

if TYPE_CHECKING:
    from .call import SipCall

log = logging.getLogger("voicebot.sip.prack")

Addr = tuple[str, int]


def reliable_rseq(resp: SipResponse) -> int | None:
    """The RSeq of a reliable provisional response (101..199 with ``Require: 100rel``), else None."""
    if not 100 < resp.status < 200:
        return None
    if not any(v.strip().lower() == "100rel" for v in resp.headers.values("Require")):
        return None
    rseq = (resp.headers.get("RSeq") or "").strip()
    return int(rseq) if rseq.isdigit() and len(rseq) <= 10 else None


@dataclass
class EarlyDialogs:
    """An outbound INVITE's early dialogs: each To tag's dialog (for PRACK) and the last RSeq acknowledged."""

    dialogs: dict[str, Dialog] = field(default_factory=dict)
    last_rseq: dict[str, int] = field(default_factory=dict)
    pracks_sent: int = 0

    def prack_for(self, invite: SipRequest, resp: SipResponse, addr: Addr) -> SipRequest | None:
        """The PRACK acknowledging ``resp``, or None (not reliable, a retransmission, or out of order)."""
        rseq = reliable_rseq(resp)
        tag = resp.to.tag or ""
        if rseq is None or not tag:
            return None
        last = self.last_rseq.get(tag)
        if last is not None and rseq != last + 1:
            return None  # a retransmission (already acknowledged) or one that skipped ahead (§4: discard)
        self.last_rseq[tag] = rseq
        dialog = self.dialogs.get(tag)
        if dialog is None:
            dialog = self.dialogs[tag] = Dialog.from_2xx(invite, resp, addr)  # early dialog (RFC 3261 §12.1.2)
        num, method = invite.cseq
        return dialog.create_request("PRACK", extra_headers=[("RAck", f"{rseq} {num} {method}")])

    def carry_cseq(self, dialog: Dialog) -> None:
        """The confirmed dialog goes on from the CSeq its early dialog reached (PRACKs used some)."""
        early = self.dialogs.get(dialog.remote_tag)
        if early is not None:
            dialog.local_seq = max(dialog.local_seq, early.local_seq)


def on_provisional(call: "SipCall", resp: SipResponse, addr: Addr) -> None:
    """A provisional response to ``call``'s INVITE: early media to the application, PRACK when reliable."""
    if resp.status in (180, 183) and resp.body and resp.content_type == "application/sdp" \
            and resp.body != call.early_sdp:
        call.early_sdp = resp.body
        log.info("early media", extra={"fields": {"call_id": call.call_id, "status": resp.status}})
        if call.on_early_media is not None:
            call.on_early_media(resp.body)
    prack = call.early.prack_for(call.invite, resp, addr)
    if prack is not None:
        call.ua.spawn(_send_prack(call, prack, addr))


async def _send_prack(call: "SipCall", prack: SipRequest, addr: Addr) -> None:
    call.early.pracks_sent += 1
    try:
        resp = await call.ua.send_request(prack, addr)
    except TransactionTimeout:
        log.warning("PRACK timed out", extra={"fields": {"call_id": call.call_id}})
        return
    log.info("PRACK answered", extra={"fields": {"call_id": call.call_id, "status": resp.status,
                                                 "rack": prack.headers.get("RAck")}})


# ---------------------------------------------------------------------------------------------- UAS side
RSEQ_LIMIT = 2**31  # §3: the first RSeq is chosen below 2**31 so that later ones never wrap


def requires_100rel(invite: SipRequest) -> bool:
    """The caller demands reliable provisionals (``Require: 100rel``)."""
    return any(v.strip().lower() == "100rel" for v in invite.headers.values("Require"))


def parse_rack(value: str | None) -> tuple[int, int, str] | None:
    """``RAck: 776656 1 INVITE`` → (776656, 1, "INVITE"); None when malformed."""
    parts = (value or "").split()
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or len(parts[0]) > 10:
        return None
    return int(parts[0]), int(parts[1]), parts[2].upper()


class ReliableProvisionals:
    """Our reliable provisionals to one inbound INVITE (§3): at most one outstanding; it is handed to ``send``
    again every T1, 2*T1, 4*T1, ... until its PRACK arrives; after 64*T1 without one, ``give_up`` runs (the
    call layer answers the INVITE with a 5xx)."""

    def __init__(self, send: Callable[[SipResponse], None], t1: float, give_up: Callable[[], None]) -> None:
        self._send = send
        self._t1 = t1
        self._give_up = give_up
        self.next_rseq = secrets.randbelow(RSEQ_LIMIT // 2) + 1
        self.pending: SipResponse | None = None
        self.acknowledged = asyncio.Event()
        self.acknowledged.set()
        self.retransmissions = 0
        self.pracks = 0
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._interval = t1

    def send(self, resp: SipResponse) -> bool:
        """Send ``resp`` (a 101..199) reliably; False (nothing sent) while an earlier one awaits its PRACK."""
        if self.pending is not None:
            return False
        resp.headers.add("Require", "100rel")
        resp.headers.add("RSeq", str(self.next_rseq))
        self.next_rseq += 1
        self.pending = resp
        self.acknowledged.clear()
        self._interval = self._t1
        self._send(resp)
        self._arm()
        self._deadline = asyncio.get_running_loop().call_later(64 * self._t1, self._expire)
        return True

    def _arm(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._interval, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self.pending is None:
            return
        self.retransmissions += 1
        self._send(self.pending)
        self._interval *= 2
        self._arm()

    def _expire(self) -> None:
        self._deadline = None
        if self.pending is None:
            return
        log.warning("reliable provisional never acknowledged", extra={"fields": {
            "status": self.pending.status, "retransmissions": self.retransmissions}})
        self.stop()
        self._give_up()

    def prack(self, rack: str | None, invite_cseq: tuple[int, str]) -> bool:
        """A PRACK's RAck: True (answer 200) when it acknowledges the outstanding provisional, else False
        (answer 481, §3). A repeated PRACK for one already acknowledged is answered 200 again."""
        parsed = parse_rack(rack)
        if parsed is None or (parsed[1], parsed[2]) != (invite_cseq[0], invite_cseq[1].upper()):
            return False
        rseq = parsed[0]
        if self.pending is None:
            return rseq == self.next_rseq - 1 and self.pracks > 0
        if rseq != int(self.pending.headers.get("RSeq") or 0):
            return False
        self.pracks += 1
        self.stop()
        return True

    def stop(self) -> None:
        """No more retransmissions (acknowledged, or the call ended); waiters on :attr:`acknowledged` go on."""
        self.pending = None
        for handle in (self._timer, self._deadline):
            if handle is not None:
                handle.cancel()
        self._timer = self._deadline = None
        self.acknowledged.set()
