"""The UA's method-keyed handler table and the multi-subscriber call events, without sockets: the fake transport of
test_ua_paths records what the UA sends, the loop clock is fake (looptime). What goes on the wire is asserted — the
Allow header of 405s and OPTIONS, who answers, with what — not the table's internals."""

from __future__ import annotations

import asyncio

import pytest

from tests.sip.test_ua_paths import PEER, FakeTransport, settle
from voicebot.sip.call import CallState, Progress, SipCall, progress_of
from voicebot.sip.dialog import Dialog
from voicebot.sip.handlers import HandlerTable, Incoming
from voicebot.sip.message import SipRequest, SipResponse
from voicebot.sip.parser import parse_message
from voicebot.sip.transaction import Timers
from voicebot.sip.ua import UserAgent

CALL_METHODS = "ACK, BYE, CANCEL, INFO, INVITE, NOTIFY, OPTIONS, PRACK, REFER, UPDATE"  # Allow before the table existed
VALIDATOR_ORDER = "INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, UPDATE, INFO, REFER, NOTIFY"  # check_request's 405 Allow


def request(method: str, *, branch: str, cseq: int = 1, to_tag: str = "", body: bytes = b"",
            content_type: str = "", call_id: str = "h-1@127.0.0.1") -> bytes:
    to = "<sip:bot@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    ctype = f"Content-Type: {content_type}\r\n" if content_type else ""
    return (f"{method} sip:bot@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=alice\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\nContact: <sip:alice@127.0.0.1:5070>\r\n{ctype}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def make_ua() -> tuple[UserAgent, FakeTransport]:
    ua = UserAgent("127.0.0.1", 5060)
    transport = FakeTransport()
    ua.transport = transport  # type: ignore[assignment]
    return ua, transport


def answers(transport: FakeTransport, method: str) -> list[SipResponse]:
    return [m for m, _ in transport.sent if isinstance(m, SipResponse) and m.cseq[1] == method]


def last(transport: FakeTransport, method: str) -> SipResponse:
    return answers(transport, method)[-1]


# --------------------------------------------------------------------------------- the table alone

class FakeIncoming:
    def __init__(self, method: str) -> None:
        message = parse_message(request(method, branch="z9hG4bK-t"))
        assert isinstance(message, SipRequest)
        self.request = message
        self.source = PEER
        self.responses: list[int] = []

    def respond(self, status: int, reason: str | None = None, headers: list[tuple[str, str]] | None = None, *,
                contact: bool = False) -> None:
        self.responses.append(status)


def test_one_responder_per_method_over_the_default_and_unsubscribe_restores_the_default() -> None:
    table = HandlerTable()
    table.default("OPTIONS", lambda inc: inc.respond(200))
    unsubscribe = table.handle("options", lambda inc: inc.respond(503))
    with pytest.raises(ValueError):
        table.handle("OPTIONS", lambda inc: inc.respond(500))
    first = FakeIncoming("OPTIONS")
    assert table.dispatch(first) and first.responses == [503]
    unsubscribe()
    unsubscribe()  # twice is harmless
    second = FakeIncoming("OPTIONS")
    assert table.dispatch(second) and second.responses == [200]
    assert table.methods == {"OPTIONS"}
    nobody = FakeIncoming("MESSAGE")
    assert not table.dispatch(nobody) and nobody.responses == []


def test_every_observer_sees_the_request_before_the_responder_and_a_failing_one_does_not_stop_the_others() -> None:
    table = HandlerTable()
    order: list[str] = []

    def broken(_inc: Incoming) -> None:
        order.append("broken")
        raise RuntimeError("observer bug")

    table.handle("MESSAGE", lambda inc: order.append("responder"))
    table.observe("MESSAGE", broken)
    stop_audit = table.observe("MESSAGE", lambda inc: order.append("audit"))
    table.observe("MESSAGE", lambda inc: order.append("metrics"))
    table.dispatch(FakeIncoming("MESSAGE"))
    assert order == ["broken", "audit", "metrics", "responder"]
    order.clear()
    stop_audit()
    table.dispatch(FakeIncoming("MESSAGE"))
    assert order == ["broken", "metrics", "responder"]


# --------------------------------------------------------------------------------- the UA on the wire

@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_method_nobody_handles_gets_405_with_allow_from_the_table_until_a_responder_claims_it() -> None:
    ua, transport = make_ua()
    ua._on_datagram(request("MESSAGE", branch="z9hG4bK-m1"), PEER)
    refused = last(transport, "MESSAGE")
    assert refused.status == 405 and refused.headers.get("Allow") == VALIDATOR_ORDER

    seen: list[str] = []

    def take_message(incoming: Incoming) -> None:  # bodies still pass the UA's content-type check first
        seen.append(incoming.request.headers.get("CSeq") or "")
        incoming.respond(202, "Accepted")

    unsubscribe = ua.handle("MESSAGE", take_message)
    ua._on_datagram(request("MESSAGE", branch="z9hG4bK-m2", cseq=2), PEER)
    assert last(transport, "MESSAGE").status == 202 and seen == ["2 MESSAGE"]
    ua._on_datagram(request("SUBSCRIBE", branch="z9hG4bK-s1"), PEER)  # the table's methods, MESSAGE now among them
    assert last(transport, "SUBSCRIBE").headers.get("Allow") == VALIDATOR_ORDER + ", MESSAGE"
    ua._on_datagram(request("OPTIONS", branch="z9hG4bK-o1"), PEER)
    assert last(transport, "OPTIONS").headers.get("Allow") == CALL_METHODS.replace("INVITE", "INVITE, MESSAGE")

    unsubscribe()
    ua._on_datagram(request("MESSAGE", branch="z9hG4bK-m3"), PEER)
    assert last(transport, "MESSAGE").status == 405 and seen == ["2 MESSAGE"]
    ua._on_datagram(request("OPTIONS", branch="z9hG4bK-o2"), PEER)
    options = last(transport, "OPTIONS")
    assert options.status == 200 and options.headers.get("Allow") == CALL_METHODS
    assert options.headers.get("Contact") == "<sip:voicebot@127.0.0.1:5060>"


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_register_is_answered_by_its_responder_and_stays_out_of_the_advertised_allow() -> None:
    ua, transport = make_ua()
    ua._on_datagram(request("REGISTER", branch="z9hG4bK-r1"), PEER)
    assert last(transport, "REGISTER").status == 405  # no registrar: REGISTER is known, not supported
    ua.handle("REGISTER", lambda inc: inc.respond(401, headers=[("WWW-Authenticate", 'Digest realm="x"')]))
    ua._on_datagram(request("REGISTER", branch="z9hG4bK-r2"), PEER)
    challenged = last(transport, "REGISTER")
    assert challenged.status == 401 and challenged.headers.get("WWW-Authenticate") == 'Digest realm="x"'
    ua._on_datagram(request("REGISTER", branch="z9hG4bK-r3", to_tag="abc"), PEER)  # a To tag: still the registrar
    assert last(transport, "REGISTER").status == 401
    ua._on_datagram(request("OPTIONS", branch="z9hG4bK-o1"), PEER)
    assert last(transport, "OPTIONS").headers.get("Allow") == CALL_METHODS
    ua._on_datagram(request("MESSAGE", branch="z9hG4bK-m1"), PEER)
    assert last(transport, "MESSAGE").headers.get("Allow") == VALIDATOR_ORDER + ", REGISTER"


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_invites_get_480_without_an_application_and_reach_it_while_it_is_subscribed() -> None:
    ua, transport = make_ua()
    ua._on_datagram(request("INVITE", branch="z9hG4bK-i1", call_id="i1@h"), PEER)
    assert [r.status for r in answers(transport, "INVITE")] == [100, 480]
    offered: list[str] = []

    async def on_call(call: SipCall) -> None:
        offered.append(call.call_id)
        call.reject(486)

    unsubscribe = ua.accept_calls(on_call)
    ua._on_datagram(request("INVITE", branch="z9hG4bK-i2", call_id="i2@h"), PEER)
    await settle()
    assert offered == ["i2@h"] and [r.status for r in answers(transport, "INVITE")][-2:] == [100, 486]
    unsubscribe()
    ua._on_datagram(request("INVITE", branch="z9hG4bK-i3", call_id="i3@h"), PEER)
    await settle()
    assert offered == ["i2@h"] and answers(transport, "INVITE")[-1].status == 480


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_in_dialog_requests_reach_every_observer_and_every_call_event_subscriber() -> None:
    ua, transport = make_ua()
    digits: list[tuple[str, str]] = []
    also: list[str] = []
    ended: list[str] = []
    infos: list[str] = []
    byes: list[str] = []
    calls: list[SipCall] = []

    async def answer(call: SipCall) -> None:
        calls.append(call)
        call.events.dtmf.subscribe(lambda digit, source: digits.append((digit, source)))
        stop_also = call.events.dtmf.subscribe(lambda digit, _source: also.append(digit))
        call.events.ended.subscribe(lambda c: (_ for _ in ()).throw(RuntimeError("subscriber bug")))
        call.events.ended.subscribe(lambda c: ended.append(c.end_reason))
        call.events.dtmf.subscribe(lambda digit, _source: stop_also() if digit == "5" else None)
        await call.answer(b"")

    ua.accept_calls(answer)
    ua.observe("INFO", lambda inc: infos.append(inc.request.call_id))
    ua.observe("INFO", lambda inc: infos.append(inc.request.headers.get("CSeq") or ""))
    ua.observe("BYE", lambda inc: byes.append(inc.request.call_id))
    ua._on_datagram(request("INVITE", branch="z9hG4bK-d1"), PEER)
    await settle()
    tag = last(transport, "INVITE").to.tag or ""
    ua._on_datagram(request("ACK", branch="z9hG4bK-d2", to_tag=tag), PEER)
    for n, digit in enumerate("59", start=2):
        ua._on_datagram(request("INFO", branch=f"z9hG4bK-info{n}", cseq=n, to_tag=tag,
                                body=f"Signal={digit}\r\nDuration=160\r\n".encode(),
                                content_type="application/dtmf-relay"), PEER)
        await settle()
    assert [r.status for r in answers(transport, "INFO")] == [200, 200]
    assert digits == [("5", "info"), ("9", "info")] and also == ["5"]  # unsubscribed after its first digit
    assert infos == ["h-1@127.0.0.1", "2 INFO", "h-1@127.0.0.1", "3 INFO"]
    ua._on_datagram(request("BYE", branch="z9hG4bK-bye", cseq=4, to_tag=tag), PEER)
    await settle()
    assert last(transport, "BYE").status == 200 and byes == ["h-1@127.0.0.1"]
    assert ended == ["remote hangup"] and calls[0].state is CallState.ENDED
    assert len(calls[0].events.dtmf) == 0  # references dropped at the end: transactions outlive the call
    ua._on_datagram(request("BYE", branch="z9hG4bK-bye2", cseq=5, to_tag=tag), PEER)  # the dialog is gone
    assert last(transport, "BYE").status == 481 and byes == ["h-1@127.0.0.1"] * 2


def test_the_removed_single_slots_fail_loudly_with_their_replacement() -> None:
    ua, _ = make_ua()
    with pytest.raises(AttributeError, match=r"UserAgent.on_invite was removed: use ua.accept_calls"):
        ua.on_invite = None  # type: ignore[assignment]
    call = SipCall(FakeCallTransport(), outbound_invite(), PEER, inbound=False)
    with pytest.raises(AttributeError, match=r"SipCall.on_dtmf was removed: use call.events.dtmf.subscribe"):
        call.on_dtmf = lambda digit, source: None  # type: ignore[assignment]
    with pytest.raises(AttributeError, match=r"on_ended was removed"):
        call.on_ended(call)


# --------------------------------------------------------------------------------- SipCall over CallTransport

class FakeCallTransport:
    """A CallTransport that records what the call asks of its UA: no UA, no socket."""

    timers = Timers()
    contact_uri = "sip:voicebot@127.0.0.1:5060"
    allow_header = CALL_METHODS

    def __init__(self) -> None:
        self.log: list[str] = []

    def make_response(self, req: SipRequest, status: int, reason: str | None = None, *, to_tag: str | None = None,
                      headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                      content_type: str | None = None, contact: bool = False) -> SipResponse:
        return SipResponse(status=status, reason=reason or "")

    def options_response(self, req: SipRequest) -> SipResponse:
        return SipResponse(status=200, reason="OK")

    async def send_request(self, req: SipRequest, addr: tuple[str, int] | None = None) -> SipResponse:
        self.log.append(f"send {req.method} {addr}")
        return SipResponse(status=200, reason="OK")

    def send_ack(self, dialog: Dialog, invite: SipRequest, response: SipResponse) -> None:
        self.log.append("ack")

    async def cancel_invite(self, invite: SipRequest, addr: tuple[str, int]) -> None:
        self.log.append(f"cancel {invite.call_id} {addr}")

    def abandon_invite(self, invite: SipRequest) -> None:
        self.log.append(f"abandon {invite.call_id}")

    def spawn(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.ensure_future(coro)

    def register_dialog(self, call: SipCall) -> None:
        self.log.append("dialog")

    def unregister_call(self, call: SipCall) -> None:
        self.log.append(f"ended {call.end_reason}")


def outbound_invite() -> SipRequest:
    message = parse_message(request("INVITE", branch="z9hG4bK-out").replace(b"tag=alice", b"tag=ours"))
    assert isinstance(message, SipRequest)
    return message


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_an_outbound_call_cancels_after_a_provisional_and_abandons_before_one_through_its_transport() -> None:
    ringing, silent = FakeCallTransport(), FakeCallTransport()
    call = SipCall(ringing, outbound_invite(), PEER, inbound=False)
    assert call.progress is Progress.NONE
    assert call.provisional(SipResponse(status=100, reason="Trying")) is False and call.progress is Progress.TRYING
    assert call.provisional(SipResponse(status=180, reason="Ringing")) is True and call.state is CallState.RINGING
    assert call.progress is Progress.RINGING
    call.provisional(SipResponse(status=100, reason="Trying"))  # a late 100: the call still rang
    assert call.progress is Progress.RINGING
    await call.hangup("caller left")
    assert ringing.log == [f"cancel h-1@127.0.0.1 {PEER}", "ended caller left"]

    quiet = SipCall(silent, outbound_invite(), PEER, inbound=False)
    await quiet.hangup("caller left")
    assert silent.log == ["abandon h-1@127.0.0.1", "ended caller left"]


def test_the_progress_a_provisional_shows_trying_ringing_early_media() -> None:
    sdp = b"v=0\r\n"
    assert progress_of(SipResponse(status=100, reason="Trying")) is Progress.TRYING
    assert progress_of(SipResponse(status=182, reason="Queued")) is Progress.TRYING
    assert progress_of(SipResponse(status=180, reason="Ringing")) is Progress.RINGING
    assert progress_of(SipResponse(status=183, reason="Session Progress")) is Progress.RINGING
    early = SipResponse(status=183, reason="Session Progress", body=sdp)
    early.headers.set("Content-Type", "application/sdp")
    assert progress_of(early) is Progress.EARLY_MEDIA


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_confirmed_outbound_call_announces_its_dialog_and_sends_bye_through_its_transport() -> None:
    transport = FakeCallTransport()
    call = SipCall(transport, outbound_invite(), PEER, inbound=False)
    answer = SipResponse(status=200, reason="OK")
    for name in ("Via", "From", "Call-ID", "CSeq"):
        answer.headers.add(name, call.invite.headers.get(name) or "")
    answer.headers.add("To", "<sip:bot@127.0.0.1>;tag=theirs")
    call.confirmed(Dialog.from_2xx(call.invite, answer, PEER), b"v=0\r\n")
    assert call.state is CallState.CONFIRMED and call.remote_sdp == b"v=0\r\n"
    await call.hangup()
    assert transport.log == ["dialog", "ended local hangup", f"send BYE {PEER}"]
