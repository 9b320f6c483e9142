"""Provisional responses on our outbound legs: reliable ones acknowledged with PRACK (RFC 3262), early media
(183 Session Progress with SDP, RFC 3960) handed to the application before the call is answered.

A peer that sends ``Require: 100rel`` with an ``RSeq`` retransmits that provisional until our PRACK arrives,
and some gateways drop the call without it. Each early dialog (To tag) keeps its own RSeq order; a
retransmitted or out-of-order reliable provisional is not acknowledged again (§4).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
