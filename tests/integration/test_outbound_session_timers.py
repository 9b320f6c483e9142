"""RFC 4028 session timers on the legs voicebot places, against sipp answerers: the INVITE offers Session-Expires,
Min-SE and Supported: timer; the answerer's refresher choice is honoured — voicebot refreshes with UPDATE when
named (refresher=uac), and when the answerer refreshes (refresher=uas) voicebot only watches, ending the call
with BYE once the refreshes stop. The policy is lowered to Min-SE 2 s / 6 s (as test_session_timers.py does for
inbound calls) and the answerers pick 4 s, so each call lasts a few seconds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from voicebot.handoff.dialer import OutboundDialer
from voicebot.rtp.ports import PortAllocator
from voicebot.sip.call import SipCall
from voicebot.sip.sdp import build_offer
from voicebot.sip.session_timer import SessionTimerPolicy
from voicebot.sip.transport import EgressPolicy
from voicebot.sip.ua import UserAgent

from tests.integration.support import SCENARIOS, free_media_port, free_udp_port, free_udp_ports, require_tool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

LOOPBACK = EgressPolicy(["127.0.0.0/8"])


async def _sipp_uas(tmp_path: Path, scenario: str, port: int) -> asyncio.subprocess.Process:
    require_tool("sipp")
    return await asyncio.create_subprocess_exec(
        "sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1",
        "-mp", str(free_media_port()), "-m", "1", "-nostdin", "-timeout", "30s", "-timeout_error", "-trace_err",
        "-error_file", str(tmp_path / "errors.log"), cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)


async def _finish(tmp_path: Path, sipp: asyncio.subprocess.Process) -> tuple[int, str]:
    _, stderr = await asyncio.wait_for(sipp.communicate(), 30)
    errors = tmp_path / "errors.log"
    return sipp.returncode or 0, (errors.read_text() if errors.exists() else "") + stderr.decode()


def _ua() -> UserAgent:
    ua = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
    ua.session_timers = SessionTimerPolicy(True, expires_s=6, min_se_s=2)
    return ua


def test_an_agent_leg_refreshes_with_update_when_the_answerer_makes_it_the_refresher(tmp_path: Path) -> None:
    port = free_udp_port()

    async def scenario() -> tuple[SipCall, int, str]:
        ua = _ua()
        await ua.start()
        sipp = await _sipp_uas(tmp_path, "uas_session_timer_we_refresh.xml", port)  # our INVITE retransmits
        start = free_udp_ports(1, span=40, even=True)[0]
        dialer = OutboundDialer(ua, PortAllocator(start, start + 40), media_host="127.0.0.1",
                                dtmf_payload_type=101, egress=LOOPBACK)
        try:
            leg = await dialer.dial(f"sip:agent@127.0.0.1:{port}", [], ["PCMU"], timeout_s=20)
            await asyncio.wait_for(leg.call.ended.wait(), 20)  # the answerer hangs up after two refreshes
            await leg.close()
            code, report = await _finish(tmp_path, sipp)
            return leg.call, code, report
        finally:
            await ua.stop()

    call, code, report = asyncio.run(asyncio.wait_for(scenario(), 50))
    assert code == 0, report  # the offer, both UPDATEs and their Session-Expires checked by sipp
    assert call.end_reason == "remote hangup"
    assert call.session_refresh is not None and call.session_refresh.refreshes_sent == 2
    assert call.session_timer is not None and call.session_timer.refresher == "uac"


def test_a_leg_whose_answerer_refreshes_is_hung_up_when_the_refreshes_stop(tmp_path: Path) -> None:
    port = free_udp_port()

    async def scenario() -> tuple[SipCall, int, str]:
        ua = _ua()
        await ua.start()
        sipp = await _sipp_uas(tmp_path, "uas_session_timer_peer_refreshes_once.xml", port)
        try:
            call = await ua.invite(f"sip:agent@127.0.0.1:{port}", sdp=build_offer("127.0.0.1", 40000).encode())
            await asyncio.wait_for(call.ended.wait(), 20)
            code, report = await _finish(tmp_path, sipp)
            return call, code, report
        finally:
            await ua.stop()

    call, code, report = asyncio.run(asyncio.wait_for(scenario(), 50))
    assert code == 0, report  # no UPDATE from us, and our BYE came
    assert call.end_reason == "session timer expired"
    assert call.session_refresh is not None
    assert (call.session_refresh.refreshes_received, call.session_refresh.refreshes_sent) == (1, 0)
    assert 3.3 < call.duration < 6.0  # the refresh at 1 s restarted the 4 - 4/3 s wait


def test_a_422_is_retried_with_the_answerers_min_se(tmp_path: Path) -> None:
    port = free_udp_port()

    async def scenario() -> tuple[SipCall, int, str]:
        ua = _ua()
        await ua.start()
        sipp = await _sipp_uas(tmp_path, "uas_session_timer_422.xml", port)
        try:
            call = await ua.invite(f"sip:agent@127.0.0.1:{port}", sdp=build_offer("127.0.0.1", 40000).encode())
            timer = call.session_timer
            await call.hangup()
            code, report = await _finish(tmp_path, sipp)
            assert timer is not None
            return call, code, report
        finally:
            await ua.stop()

    call, code, report = asyncio.run(asyncio.wait_for(scenario(), 50))
    assert code == 0, report  # Session-Expires 6, then 8 with Min-SE 8 and CSeq 2
    assert call.session_timer is not None
    assert (call.session_timer.interval, call.session_timer.refresher) == (8, "uas")
