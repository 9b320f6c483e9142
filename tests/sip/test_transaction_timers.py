"""RFC 3261 §17 transaction timers on a fake loop clock (looptime): no sockets, 64*T1 of protocol time in
milliseconds. The sender records when each message leaves, in loop time."""

from __future__ import annotations

import asyncio

import pytest

from voicebot.sip.message import SipRequest, SipResponse
from voicebot.sip.parser import parse_message
from voicebot.sip.transaction import ClientTransaction, ServerTransaction, State, Timers, TransactionTimeout

ADDR = ("127.0.0.1", 5070)
T = Timers()  # T1 0.5 s, T2 4 s, T4 5 s


class RecordingSender:
    """A transport that keeps (loop time, first line) of everything sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str]] = []

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        assert addr == ADDR
        self.sent.append((round(asyncio.get_running_loop().time(), 3), data.split(b"\r\n", 1)[0].decode()))

    def times(self, first_line_start: str) -> list[float]:
        return [t for t, line in self.sent if line.startswith(first_line_start)]


def request(method: str, branch: str = "z9hG4bK-timers-1") -> SipRequest:
    text = (f"{method} sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=a1\r\nTo: <sip:bot@127.0.0.1>\r\n"
            f"Call-ID: timers-1@127.0.0.1\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n")
    message = parse_message(text.encode())
    assert isinstance(message, SipRequest)
    return message


def response(req: SipRequest, status: int, reason: str) -> SipResponse:
    resp = SipResponse(status=status, reason=reason)
    for name in ("Via", "From", "Call-ID", "CSeq"):
        resp.headers.add(name, req.headers.get(name) or "")
    resp.headers.add("To", (req.headers.get("To") or "") + ";tag=b2")
    return resp


def offsets(times: list[float], start: float) -> list[float]:
    return [round(t - start, 3) for t in times]


class Terminated:
    def __init__(self) -> None:
        self.at: float | None = None

    def __call__(self, _tx: object) -> None:
        self.at = asyncio.get_running_loop().time()


# --------------------------------------------------------------------------------- client transactions

@pytest.mark.asyncio
@pytest.mark.looptime
async def test_client_invite_timer_a_doubles_without_cap_and_timer_b_gives_up_at_64_t1():
    sender, done = RecordingSender(), Terminated()
    start = asyncio.get_running_loop().time()
    tx = ClientTransaction(request("INVITE"), ADDR, sender, T, done)
    tx.start()
    with pytest.raises(TransactionTimeout):
        await tx.final
    assert offsets(sender.times("INVITE"), start) == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # A: 2^n * T1
    assert done.at is not None and round(done.at - start, 3) == 32.0  # B = 64 * T1
    assert tx.state is State.TERMINATED


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_client_non_invite_timer_e_caps_at_t2_and_timer_f_gives_up_at_64_t1():
    sender, done = RecordingSender(), Terminated()
    start = asyncio.get_running_loop().time()
    tx = ClientTransaction(request("OPTIONS"), ADDR, sender, T, done)
    tx.start()
    with pytest.raises(TransactionTimeout):
        await tx.final
    assert offsets(sender.times("OPTIONS"), start) == [
        0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]  # E: min(2^n * T1, T2)
    assert done.at is not None and round(done.at - start, 3) == 32.0  # F


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_client_invite_stops_retransmitting_on_a_provisional_and_acks_a_rejection_until_timer_d():
    sender, done = RecordingSender(), Terminated()
    loop = asyncio.get_running_loop()
    start = loop.time()
    invite = request("INVITE")
    tx = ClientTransaction(invite, ADDR, sender, T, done)
    tx.start()
    await asyncio.sleep(0.7)
    tx.on_response(response(invite, 180, "Ringing"))
    await asyncio.sleep(10)
    assert offsets(sender.times("INVITE"), start) == [0.0, 0.5]  # nothing after the 180
    busy = response(invite, 486, "Busy Here")
    tx.on_response(busy)
    assert (await tx.final).status == 486 and tx.state is State.COMPLETED
    tx.on_response(busy)  # the 486 retransmitted: the ACK is sent again
    assert len(sender.times("ACK")) == 2
    await asyncio.sleep(31.9)
    assert tx.state is State.COMPLETED and done.at is None
    await asyncio.sleep(0.2)
    assert done.at is not None and round(done.at - start, 1) == round(10.7 + 32.0, 1)  # D = 32 s on UDP


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_client_non_invite_after_a_provisional_retransmits_every_t2_and_waits_t4_after_the_final():
    sender, done = RecordingSender(), Terminated()
    start = asyncio.get_running_loop().time()
    options = request("OPTIONS")
    tx = ClientTransaction(options, ADDR, sender, T, done)
    tx.start()
    await asyncio.sleep(0.6)
    tx.on_response(response(options, 100, "Trying"))
    await asyncio.sleep(9)  # retransmissions at 1.5, then every T2: 5.5, 9.5
    tx.on_response(response(options, 200, "OK"))
    assert (await tx.final).status == 200
    assert offsets(sender.times("OPTIONS"), start) == [0.0, 0.5, 1.5, 5.5, 9.5]
    await asyncio.sleep(T.t4 + 0.1)
    assert done.at is not None and round(done.at - start, 1) == round(9.6 + T.t4, 1)  # K = T4 on UDP


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_client_transaction_over_a_reliable_transport_never_retransmits_but_still_times_out():
    sender, done = RecordingSender(), Terminated()
    start = asyncio.get_running_loop().time()
    tx = ClientTransaction(request("INVITE"), ADDR, sender, T, done, reliable=True)
    tx.start()
    with pytest.raises(TransactionTimeout):
        await tx.final
    assert offsets(sender.times("INVITE"), start) == [0.0]
    assert done.at is not None and round(done.at - start, 3) == 32.0


# --------------------------------------------------------------------------------- server transactions

@pytest.mark.asyncio
@pytest.mark.looptime
async def test_server_invite_rejection_retransmits_per_timer_g_until_the_ack_then_timer_i():
    sender, done = RecordingSender(), Terminated()
    loop = asyncio.get_running_loop()
    invite = request("INVITE")
    tx = ServerTransaction(invite, ADDR, sender, T, done)
    start = loop.time()
    tx.respond(response(invite, 486, "Busy Here"))
    await asyncio.sleep(12)
    assert offsets(sender.times("SIP/2.0 486"), start) == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5]  # G: min(2^n * T1, T2)
    tx.on_retransmission(request("ACK"))
    assert tx.state is State.CONFIRMED
    await asyncio.sleep(20)
    assert len(sender.times("SIP/2.0 486")) == 6  # the ACK stopped them
    assert done.at is not None and round(done.at - start, 1) == round(12 + T.t4, 1)  # I = T4


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_server_invite_rejection_never_acked_ends_at_timer_h_and_tells_the_transaction_user():
    sender, done = RecordingSender(), Terminated()
    unacked: list[ServerTransaction] = []
    invite = request("INVITE")
    tx = ServerTransaction(invite, ADDR, sender, T, done, on_ack_timeout=unacked.append)
    start = asyncio.get_running_loop().time()
    tx.respond(response(invite, 486, "Busy Here"))
    await asyncio.sleep(33)
    assert unacked == [tx] and done.at is not None and round(done.at - start, 3) == 32.0  # H = 64 * T1
    assert offsets(sender.times("SIP/2.0 486"), start)[-1] <= 32.0


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_server_invite_2xx_is_retransmitted_until_acked_and_retransmitted_invites_absorbed_until_timer_l():
    sender, done = RecordingSender(), Terminated()
    invite = request("INVITE")
    tx = ServerTransaction(invite, ADDR, sender, T, done)
    start = asyncio.get_running_loop().time()
    tx.respond(response(invite, 200, "OK"))
    assert tx.state is State.ACCEPTED
    await asyncio.sleep(2)
    tx.on_ack()
    assert tx.acked is not None and tx.acked.is_set()
    tx.on_retransmission(invite)  # a late INVITE retransmission: answered with the 200 again, no new call
    await asyncio.sleep(10)
    assert offsets(sender.times("SIP/2.0 200"), start) == [0.0, 0.5, 1.5, 2.0]
    assert tx.state is State.ACCEPTED and done.at is None
    await asyncio.sleep(21)
    assert done.at is not None and round(done.at - start, 3) == 32.0  # L = 64 * T1


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_server_non_invite_answers_retransmissions_from_its_cache_until_timer_j():
    sender, done = RecordingSender(), Terminated()
    options = request("OPTIONS")
    tx = ServerTransaction(options, ADDR, sender, T, done)
    start = asyncio.get_running_loop().time()
    tx.respond(response(options, 200, "OK"))
    await asyncio.sleep(3)
    tx.on_retransmission(options)
    tx.respond(response(options, 500, "Server Error"))  # a second final from the TU is ignored
    assert [line for _, line in sender.sent] == ["SIP/2.0 200 OK", "SIP/2.0 200 OK"]
    await asyncio.sleep(30)
    assert done.at is not None and round(done.at - start, 3) == 32.0  # J = 64 * T1 on UDP
