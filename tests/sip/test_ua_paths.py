"""The UA's request paths without sockets: a fake transport records what the UA sends and the loop clock is fake
(looptime), so RFC 3261 paths (481, 487, 500, retransmission absorption, the no-ACK hang-up) run in milliseconds."""

from __future__ import annotations

import asyncio

import pytest

from voicebot.sip.call import SipCall
from voicebot.sip.message import SipResponse
from voicebot.sip.parser import parse_message
from voicebot.sip.ua import UserAgent

PEER = ("127.0.0.1", 5070)


class FakeTransport:
    """Stands in for the UDP socket: every datagram the UA sends is parsed and kept."""

    local_addr = ("127.0.0.1", 5060)

    def __init__(self) -> None:
        self.sent: list[tuple[object, tuple[str, int]]] = []

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((parse_message(data), addr))

    def close(self) -> None:
        pass

    def responses(self, method: str) -> list[int]:
        return [m.status for m, _ in self.sent if isinstance(m, SipResponse) and m.cseq[1] == method]


def make_ua(handler=None) -> tuple[UserAgent, FakeTransport]:  # type: ignore[no-untyped-def]
    ua = UserAgent("127.0.0.1", 5060)
    transport = FakeTransport()
    ua.transport = transport  # type: ignore[assignment]
    if handler is not None:
        ua.accept_calls(handler)
    return ua, transport


def request(method: str, *, branch: str = "z9hG4bK-ua-1", cseq: int = 1, to_tag: str = "",
            call_id: str = "ua-1@127.0.0.1", cseq_method: str | None = None) -> bytes:
    to = "<sip:bot@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    return (f"{method} sip:bot@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=alice\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq} {cseq_method or method}\r\nContact: <sip:alice@127.0.0.1:5070>\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_requests_for_no_dialog_and_cancels_for_no_invite_get_481() -> None:
    ua, transport = make_ua()
    ua._on_datagram(request("BYE", to_tag="nobody"), PEER)
    ua._on_datagram(request("CANCEL", branch="z9hG4bK-none"), PEER)
    assert transport.responses("BYE") == [481] and transport.responses("CANCEL") == [481]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_cancelled_invite_gets_200_for_the_cancel_and_487_for_the_invite_and_the_handler_sees_it_end() -> None:
    seen: list[SipCall] = []

    async def ring_forever(call: SipCall) -> None:
        seen.append(call)
        call.ringing()
        await call.ended.wait()

    ua, transport = make_ua(ring_forever)
    ua._on_datagram(request("INVITE"), PEER)
    await settle()
    ua._on_datagram(request("INVITE"), PEER)  # a retransmission: absorbed, one call only
    await settle()
    ua._on_datagram(request("CANCEL"), PEER)
    await settle()
    assert len(seen) == 1 and seen[0].ended.is_set() and seen[0].end_reason == "cancelled"
    assert transport.responses("CANCEL") == [200]
    invite_answers = transport.responses("INVITE")
    assert invite_answers[0] == 100 and invite_answers[-1] == 487 and 180 in invite_answers
    ua._on_datagram(request("ACK", cseq_method="ACK"), PEER)  # the ACK for the 487 ends its retransmissions
    await asyncio.sleep(40)
    assert transport.responses("INVITE").count(487) == 1


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_an_answered_call_without_ack_is_hung_up_after_64_t1_and_a_stale_cseq_gets_500() -> None:
    answered: list[bool] = []

    async def answer(call: SipCall) -> None:
        answered.append(await call.answer(b""))

    ua, transport = make_ua(answer)
    ua._on_datagram(request("INVITE", cseq=5), PEER)
    await settle()
    [ok] = [m for m, _ in transport.sent if isinstance(m, SipResponse) and m.status == 200]
    assert isinstance(ok, SipResponse)
    tag = ok.to.tag or ""
    ua._on_datagram(request("INFO", branch="z9hG4bK-ua-2", cseq=4, to_tag=tag), PEER)  # lower than the INVITE's
    assert transport.responses("INFO") == [500]
    await asyncio.sleep(31)
    assert answered == []  # still waiting for the ACK (64*T1 = 32 s)
    await asyncio.sleep(2)  # no ACK ever comes
    assert answered == [False]
    byes = [(m, a) for m, a in transport.sent if not isinstance(m, SipResponse) and getattr(m, "method", "") == "BYE"]
    assert byes and byes[0][1] == PEER
