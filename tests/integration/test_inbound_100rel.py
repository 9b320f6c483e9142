"""Inbound calls from sipp callers that send ``Require: 100rel`` (RFC 3262): the 180 goes out reliably (RSeq,
retransmitted with T1 doubling until the PRACK), the PRACK is answered 200 and only then the INVITE 200; a caller
that never PRACKs gets 504 after 64*T1 and its call is cleaned up. The UA runs in-process with T1 = 50 ms so the
64*T1 give-up comes after 3.2 s."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from voicebot.sip.call import SipCall
from voicebot.sip.sdp import build_offer
from voicebot.sip.transaction import Timers
from voicebot.sip.ua import UserAgent

from tests.integration.support import (SCENARIOS, free_media_port, free_udp_port, require_tool, run_sipp,
                                       start_server, stop_server)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

T1 = 0.05


async def _run(tmp_path: Path, scenario: str) -> tuple[list[SipCall], int, str, UserAgent]:
    """One sipp caller against an in-process UA that rings then answers (as the server does with
    answer_delay_s); returns the calls, sipp's exit code and its error report."""
    require_tool("sipp")
    ua = UserAgent("127.0.0.1", 0, timers=Timers(t1=T1))
    calls: list[SipCall] = []

    async def on_call(call: SipCall) -> None:
        calls.append(call)
        call.ringing()
        if await call.answer(build_offer("127.0.0.1", 40000).encode()):
            await call.ended.wait()

    ua.accept_calls(on_call)
    await ua.start()
    errors = tmp_path / "errors.log"
    try:
        sipp = await asyncio.create_subprocess_exec(
            "sipp", f"127.0.0.1:{ua.port}", "-sf", str(SCENARIOS / scenario), "-m", "1", "-i", "127.0.0.1",
            "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-nostdin",
            "-timeout", "30s", "-timeout_error", "-trace_err", "-error_file", str(errors),
            cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        _, stderr = await asyncio.wait_for(sipp.communicate(), 40)
        for call in calls:
            await asyncio.wait_for(call.ended.wait(), 10)
        report = (errors.read_text() if errors.exists() else "") + stderr.decode()
        return calls, sipp.returncode or 0, report, ua
    finally:
        await ua.stop()


def test_reliable_180_is_prack_ed_before_the_200(tmp_path: Path) -> None:
    calls, code, report, ua = asyncio.run(_run(tmp_path, "uac_requires_100rel.xml"))
    assert code == 0, report  # RSeq/Require checked, 200 (PRACK) before 200 (INVITE): sipp checks the order
    [call] = calls
    assert call.reliable is not None and call.reliable.pracks == 1
    assert call.reliable.retransmissions >= 1  # the 300 ms pause before the PRACK: retransmitted at 50, 150 ms
    assert call.end_reason == "remote hangup" and call.answered_at is not None
    assert ua.active_calls == 0


def test_a_caller_that_never_pracks_gets_504_and_the_call_is_cleaned_up(tmp_path: Path) -> None:
    calls, code, report, ua = asyncio.run(_run(tmp_path, "uac_requires_100rel_no_prack.xml"))
    assert code == 0, report
    [call] = calls
    assert call.end_reason == "rejected 504" and call.answered_at is None
    assert call.reliable is not None and call.reliable.pending is None
    # sent at 0, retransmitted at T1, 3, 7, 15, 31, 63 T1 (intervals doubling), given up at 64 T1
    assert call.reliable.retransmissions == 6
    assert ua.active_calls == 0 and ua.pending_setups == 0


def test_the_server_rings_reliably_and_answers_after_the_prack(tmp_path: Path) -> None:
    """The whole server (answer_delay_s: it rings first): the keypad demo answers the 100rel caller only after
    the PRACK; the caller hangs up and the call is recorded as answered."""
    server = start_server(tmp_path, "answer_delay_s: 0.2")
    try:
        args = [f"{server.host}:{server.port}", "-sf", str(SCENARIOS / "uac_requires_100rel.xml"), "-m", "1",
                "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_media_port())]
        result = run_sipp(args, tmp_path, timeout=30)
        assert result.returncode == 0, result.stderr
        server.wait_for_match("call ended", end_reason="remote hangup")
        [prack] = server.records("PRACK received")
        assert prack["matched"] is True
    finally:
        stop_server(server)
