"""Our outbound legs against gateways (sipp UAS) that send 183 with early media, one with Require: 100rel."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from voicebot.handoff.dialer import OutboundDialer
from voicebot.rtp.ports import PortAllocator
from voicebot.sip.sdp import build_offer, parse_sdp
from voicebot.sip.transport import EgressPolicy
from voicebot.sip.ua import UserAgent

from tests.integration.support import SCENARIOS, free_media_port, free_udp_port, free_udp_ports, require_tool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_reliable_183_is_pracked_once_and_its_early_media_reaches_the_application(tmp_path: Path) -> None:
    require_tool("sipp")
    port, media_port = free_udp_port(), free_media_port()
    errors = tmp_path / "sipp_errors.log"
    # no wait for sipp to bind: our INVITE is retransmitted (timer A) until it listens
    sipp = subprocess.Popen(["sipp", "-sf", str(SCENARIOS / "uas_183_100rel.xml"), "-i", "127.0.0.1", "-p", str(port),
                             "-mi", "127.0.0.1", "-mp", str(media_port), "-m", "1", "-nostdin", "-timeout", "30s",
                             "-timeout_error", "-trace_err", "-error_file", str(errors)],
                            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)

    async def scenario() -> tuple[list[bytes], int, str]:
        ua = UserAgent("127.0.0.1", 0, egress=EgressPolicy(["127.0.0.0/8"]))
        await ua.start()
        try:
            early: list[bytes] = []
            call = await ua.invite(f"sip:gw@127.0.0.1:{port}", sdp=build_offer("127.0.0.1", 40000).encode(),
                                   on_early_media=early.append)
            await call.hangup()  # returns once the BYE is answered
            return early, call.early.pracks_sent, call.end_reason
        finally:
            await ua.stop()

    early, pracks, reason = asyncio.run(asyncio.wait_for(scenario(), 40))
    try:
        code = sipp.wait(20)
    finally:
        if sipp.poll() is None:
            sipp.kill()
    report = (errors.read_text() if errors.exists() else "") + (sipp.stderr.read() if sipp.stderr else "")
    assert code == 0, report  # RAck, the PRACK's CSeq and the BYE's CSeq checked by sipp
    assert len(early) == 1 and parse_sdp(early[0]).media[0].port == media_port
    assert pracks == 1  # the 183's retransmissions are not acknowledged again
    assert reason == "local hangup"


def test_dialer_sends_and_receives_early_media_before_the_answer(tmp_path: Path) -> None:
    """The agent line plays early media for 1.5 s (sipp echoes our RTP back): by the answer our leg has been
    sending to the 183's address and receiving from it; without early media nothing flows before the 200."""
    require_tool("sipp")
    port, media_port = free_udp_port(), free_media_port()
    sipp = subprocess.Popen(["sipp", "-sf", str(SCENARIOS / "uas_183_early_media.xml"), "-i", "127.0.0.1",
                             "-p", str(port), "-mi", "127.0.0.1", "-mp", str(media_port), "-rtp_echo", "-m", "1",
                             "-nostdin", "-timeout", "30s", "-timeout_error"],
                            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    async def scenario() -> dict[str, int]:
        ua = UserAgent("127.0.0.1", 0, egress=EgressPolicy(["127.0.0.0/8"]))
        await ua.start()
        start = free_udp_ports(1, span=40, even=True)[0]
        dialer = OutboundDialer(ua, PortAllocator(start, start + 40), media_host="127.0.0.1",
                                dtmf_payload_type=101, egress=EgressPolicy(["127.0.0.0/8"]))
        try:
            leg = await dialer.dial(f"sip:agent@127.0.0.1:{port}", [], ["PCMU"], timeout_s=20)
            at_answer = {k: int(leg.stream.stats[k]) for k in ("packets_sent", "packets_received")}
            await leg.hangup()
            await leg.close()
            return at_answer
        finally:
            await ua.stop()

    at_answer = asyncio.run(asyncio.wait_for(scenario(), 40))
    try:
        assert sipp.wait(20) == 0
    finally:
        if sipp.poll() is None:
            sipp.kill()
    assert at_answer["packets_sent"] >= 20, at_answer  # 1.5 s of 20 ms packets, less on a loaded box
    assert at_answer["packets_received"] >= 10, at_answer


def test_an_answer_given_in_the_183_serves_a_200_without_sdp(tmp_path: Path) -> None:
    """RFC 3264: the SDP of the 183 is the answer, and the 200 OK may carry none; the leg is kept (not hung up
    as 'bad SDP answer') and its media points at the 183's address."""
    require_tool("sipp")
    port, media_port = free_udp_port(), free_media_port()
    sipp = subprocess.Popen(["sipp", "-sf", str(SCENARIOS / "uas_183_sdp_200_without_sdp.xml"), "-i", "127.0.0.1",
                             "-p", str(port), "-mi", "127.0.0.1", "-mp", str(media_port), "-rtp_echo", "-m", "1",
                             "-nostdin", "-timeout", "30s", "-timeout_error"],
                            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    async def scenario() -> tuple[str, int]:
        ua = UserAgent("127.0.0.1", 0, egress=EgressPolicy(["127.0.0.0/8"]))
        await ua.start()
        start = free_udp_ports(1, span=40, even=True)[0]
        dialer = OutboundDialer(ua, PortAllocator(start, start + 40), media_host="127.0.0.1",
                                dtmf_payload_type=101, egress=EgressPolicy(["127.0.0.0/8"]))
        try:
            leg = await dialer.dial(f"sip:agent@127.0.0.1:{port}", [], ["PCMU"], timeout_s=20)
            state = leg.call.state.value
            remote_port = leg.stream.remote[1] if leg.stream.remote else 0
            await leg.hangup()
            await leg.close()
            return state, remote_port
        finally:
            await ua.stop()

    state, remote_port = asyncio.run(asyncio.wait_for(scenario(), 40))
    try:
        assert sipp.wait(20) == 0  # the BYE came from us at the end, not at the answer
    finally:
        if sipp.poll() is None:
            sipp.kill()
    assert state == "confirmed"
    assert remote_port == media_port
