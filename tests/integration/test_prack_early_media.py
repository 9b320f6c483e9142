"""Our outbound legs against gateways (sipp UAS) that send 183 with early media, one with Require: 100rel."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from voicebot.channels.sip import SipChannel
from voicebot.handoff.dialer import OutboundDialer
from voicebot.rtp.ports import PortAllocator
from voicebot.sip.sdp import build_offer, parse_sdp
from voicebot.sip.transport import EgressPolicy
from voicebot.sip.ua import UserAgent

from tests.integration.support import SCENARIOS, free_media_port, free_udp_port, free_udp_ports, require_tool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

LOOPBACK = EgressPolicy(["127.0.0.0/8"])
Seen = TypeVar("Seen")


@dataclass
class Gateway:
    """A sipp UAS playing one gateway scenario for one call on loopback (no wait for it to bind: our INVITE is
    retransmitted, timer A, until it listens)."""

    proc: subprocess.Popen[str]
    port: int
    media_port: int
    errors: Path

    def finish(self) -> tuple[int, str]:
        """Wait for sipp to end (killed after 20 s): its exit code and what it reported."""
        try:
            code = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        report = self.errors.read_text() if self.errors.exists() else ""
        return code, report + (self.proc.stderr.read() if self.proc.stderr else "")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """Start a gateway: ``gateway(scenario, *sipp options)``; one left running is killed after the test."""
    started: list[Gateway] = []

    def start(scenario: str, *options: str) -> Gateway:
        require_tool("sipp")
        port, media_port, errors = free_udp_port(), free_media_port(), tmp_path / "sipp_errors.log"
        proc = subprocess.Popen(["sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port),
                                 "-mi", "127.0.0.1", "-mp", str(media_port), *options, "-m", "1", "-nostdin",
                                 "-timeout", "30s", "-timeout_error", "-trace_err", "-error_file", str(errors)],
                                cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        started.append(Gateway(proc, port, media_port, errors))
        return started[-1]

    yield start
    for each in started:
        if each.proc.poll() is None:
            each.proc.kill()
            each.proc.wait()


def dial(gateway: Gateway, inspect: Callable[[SipChannel], Seen]) -> Seen:
    """Dial the gateway's agent line with an OutboundDialer; what ``inspect`` sees on the answered leg, which is
    then hung up."""

    async def scenario() -> Seen:
        ua = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
        await ua.start()
        start = free_udp_ports(1, span=40, even=True)[0]
        dialer = OutboundDialer(ua, PortAllocator(start, start + 40), media_host="127.0.0.1",
                                dtmf_payload_type=101, egress=LOOPBACK)
        try:
            leg = await dialer.dial(f"sip:agent@127.0.0.1:{gateway.port}", [], ["PCMU"], timeout_s=20)
            seen = inspect(leg)
            await leg.hangup()
            await leg.close()
            return seen
        finally:
            await ua.stop()

    return asyncio.run(asyncio.wait_for(scenario(), 40))


def test_reliable_183_is_pracked_once_and_its_early_media_reaches_the_application(
        gateway: Callable[..., Gateway]) -> None:
    sipp = gateway("uas_183_100rel.xml")

    async def scenario() -> tuple[list[bytes], int, str]:
        ua = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
        await ua.start()
        try:
            early: list[bytes] = []
            call = await ua.invite(f"sip:gw@127.0.0.1:{sipp.port}", sdp=build_offer("127.0.0.1", 40000).encode(),
                                   on_early_media=early.append)
            await call.hangup()  # returns once the BYE is answered
            return early, call.early.pracks_sent, call.end_reason
        finally:
            await ua.stop()

    early, pracks, reason = asyncio.run(asyncio.wait_for(scenario(), 40))
    code, report = sipp.finish()
    assert code == 0, report  # RAck, the PRACK's CSeq and the BYE's CSeq checked by sipp
    assert len(early) == 1 and parse_sdp(early[0]).media[0].port == sipp.media_port
    assert pracks == 1  # the 183's retransmissions are not acknowledged again
    assert reason == "local hangup"


def test_dialer_sends_and_receives_early_media_before_the_answer(gateway: Callable[..., Gateway]) -> None:
    """The agent line plays early media for 1.5 s (sipp echoes our RTP back): by the answer our leg has been
    sending to the 183's address and receiving from it; without early media nothing flows before the 200."""
    sipp = gateway("uas_183_early_media.xml", "-rtp_echo")
    at_answer = dial(sipp, lambda leg: {k: int(leg.stream.stats[k]) for k in ("packets_sent", "packets_received")})
    code, report = sipp.finish()
    assert code == 0, report
    assert at_answer["packets_sent"] >= 20, at_answer  # 1.5 s of 20 ms packets, less on a loaded box
    assert at_answer["packets_received"] >= 10, at_answer


def test_an_answer_given_in_the_183_serves_a_200_without_sdp(gateway: Callable[..., Gateway]) -> None:
    """RFC 3264: the SDP of the 183 is the answer, and the 200 OK may carry none; the leg is kept (not hung up
    as 'bad SDP answer') and its media points at the 183's address."""
    sipp = gateway("uas_183_sdp_200_without_sdp.xml", "-rtp_echo")
    state, remote_port = dial(sipp, lambda leg: (leg.call.state.value,
                                                 leg.stream.remote[1] if leg.stream.remote else 0))
    code, report = sipp.finish()
    assert code == 0, report  # the BYE came from us at the end, not at the answer
    assert state == "confirmed"
    assert remote_port == sipp.media_port
