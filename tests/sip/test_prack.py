"""PRACK bookkeeping (RFC 3262): which provisionals are reliable, one PRACK per RSeq in order, CSeq carried on."""

from __future__ import annotations

from voicebot.sip.dialog import Dialog
from voicebot.sip.message import SipRequest, SipResponse
from voicebot.sip.prack import EarlyDialogs, reliable_rseq

ADDR = ("127.0.0.1", 5090)


def _invite() -> SipRequest:
    req = SipRequest(method="INVITE", uri="sip:gw@127.0.0.1:5090")
    for name, value in (("From", "<sip:voicebot@127.0.0.1>;tag=ours"), ("To", "<sip:gw@127.0.0.1>"),
                        ("Call-ID", "c1@127.0.0.1"), ("CSeq", "7 INVITE")):
        req.headers.add(name, value)
    return req


def _provisional(status: int, rseq: int | None, tag: str = "gw1", require: str = "100rel") -> SipResponse:
    resp = SipResponse(status=status, reason="Session Progress")
    for name, value in (("From", "<sip:voicebot@127.0.0.1>;tag=ours"), ("To", f"<sip:gw@127.0.0.1>;tag={tag}"),
                        ("Call-ID", "c1@127.0.0.1"), ("CSeq", "7 INVITE"), ("Contact", "<sip:gw@127.0.0.1:5090>")):
        resp.headers.add(name, value)
    if rseq is not None:
        resp.headers.add("Require", require)
        resp.headers.add("RSeq", str(rseq))
    return resp


def test_only_require_100rel_with_rseq_is_reliable() -> None:
    assert reliable_rseq(_provisional(183, 5)) == 5
    assert reliable_rseq(_provisional(183, None)) is None
    assert reliable_rseq(_provisional(183, 5, require="timer")) is None
    assert reliable_rseq(_provisional(100, 5)) is None


def test_one_prack_per_rseq_in_order_per_early_dialog() -> None:
    early, invite = EarlyDialogs(), _invite()
    first = early.prack_for(invite, _provisional(183, 5), ADDR)
    assert first is not None and first.method == "PRACK"
    assert first.headers.get("RAck") == "5 7 INVITE" and first.cseq == (8, "PRACK")
    assert first.to.tag == "gw1"
    assert early.prack_for(invite, _provisional(183, 5), ADDR) is None  # retransmission
    assert early.prack_for(invite, _provisional(183, 7), ADDR) is None  # skipped ahead
    nxt = early.prack_for(invite, _provisional(180, 6), ADDR)
    assert nxt is not None and nxt.cseq == (9, "PRACK")
    other = early.prack_for(invite, _provisional(183, 1, tag="gw2"), ADDR)  # a forked early dialog of its own
    assert other is not None and other.headers.get("RAck") == "1 7 INVITE"
    assert early.prack_for(invite, _provisional(183, None), ADDR) is None


def test_confirmed_dialog_continues_the_early_cseq() -> None:
    early, invite = EarlyDialogs(), _invite()
    early.prack_for(invite, _provisional(183, 1), ADDR)
    ok = _provisional(200, None)
    dialog = Dialog.from_2xx(invite, ok, ADDR)
    early.carry_cseq(dialog)
    assert dialog.create_request("BYE").cseq == (9, "BYE")
