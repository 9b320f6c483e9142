"""Our UA as the client: REGISTER with digest and outbound INVITE with handoff headers, against sipp UAS."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from voicebot.sip.registration import Registration
from voicebot.sip.sdp import build_offer
from voicebot.sip.transaction import Timers
from voicebot.sip.transport import EgressPolicy
from voicebot.sip.ua import UserAgent

from tests.integration.support import SCENARIOS, free_media_port, free_udp_port, require_tool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

LOOPBACK = EgressPolicy(["127.0.0.0/8", "::1/128"])


def start_sipp_uas(scenario: str, port: int, cwd: Path) -> subprocess.Popen:
    require_tool("sipp")
    proc = subprocess.Popen(["sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port),
                             "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-m", "1", "-nostdin",
                             "-timeout", "30s", "-timeout_error", "-trace_err", "-error_file",
                             str(cwd / "sipp_errors.log")],
                            cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(0.3)  # let sipp bind its socket
    return proc


def finish(proc: subprocess.Popen, cwd: Path) -> tuple[int, str]:
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    errors = (cwd / "sipp_errors.log").read_text() if (cwd / "sipp_errors.log").exists() else ""
    return proc.returncode, errors + (proc.stderr.read() if proc.stderr else "")


def test_register_with_digest_challenge(tmp_path: Path) -> None:
    port = free_udp_port()
    sipp = start_sipp_uas("uas_register_challenge.xml", port, tmp_path)

    async def scenario() -> tuple[int | None, bool, float | None]:
        ua = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
        await ua.start()
        try:
            reg = Registration(ua, f"sip:127.0.0.1:{port}", "trunkuser", "s3cret-pw", expires=300, name="sipp")
            resp = await reg.register_once()
            return resp.status, reg.registered, reg.expires_at
        finally:
            await ua.stop()

    status, registered, expires_at = asyncio.run(scenario())
    code, errors = finish(sipp, tmp_path)
    assert status == 200, errors
    assert registered
    assert expires_at is not None and 100 < expires_at - time.time() <= 120  # the registrar granted 120 s
    assert code == 0, errors


def test_register_with_wrong_password_is_refused(tmp_path: Path) -> None:
    port = free_udp_port()
    sipp = start_sipp_uas("uas_register_challenge.xml", port, tmp_path)

    async def scenario() -> tuple[int, bool]:
        ua = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
        await ua.start()
        try:
            reg = Registration(ua, f"sip:127.0.0.1:{port}", "trunkuser", "wrong", expires=300)
            resp = await reg.register_once()
            return resp.status, reg.registered
        finally:
            await ua.stop()

    status, registered = asyncio.run(scenario())
    finish(sipp, tmp_path)
    assert status == 403
    assert not registered


def test_outbound_invite_carries_handoff_headers(tmp_path: Path) -> None:
    port = free_udp_port()
    sipp = start_sipp_uas("uas_check_headers.xml", port, tmp_path)

    async def scenario() -> tuple[str, bool]:
        ua = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
        await ua.start()
        try:
            offer = build_offer("127.0.0.1", free_media_port()).encode()
            ringing: list[int] = []
            call = await ua.invite(f"sip:agent@127.0.0.1:{port}", sdp=offer, headers=[
                ("X-Voicebot-Call-Id", "call-42.abc"), ("User-to-User", "766f696365626f74;encoding=hex"),
                ("Priority-Queue", "vip")], on_ringing=lambda r: ringing.append(r.status))
            await asyncio.sleep(0.5)
            await call.hangup()
            await asyncio.sleep(0.3)
            return call.end_reason, bool(ringing)
        finally:
            await ua.stop()

    reason, rang = asyncio.run(scenario())
    code, errors = finish(sipp, tmp_path)
    assert code == 0, errors  # sipp's check_it regexps failed the call otherwise
    assert rang
    assert reason == "local hangup"


def test_outbound_invite_missing_headers_fails_the_agents_check(tmp_path: Path) -> None:
    """Control for the test above: the same sipp check does fail when the handoff headers are absent."""
    port = free_udp_port()
    sipp = start_sipp_uas("uas_check_headers.xml", port, tmp_path)

    async def scenario() -> None:
        ua = UserAgent("127.0.0.1", 0, egress=LOOPBACK, timers=Timers(t1=0.1))
        await ua.start()
        try:
            call = await ua.invite(f"sip:agent@127.0.0.1:{port}", sdp=build_offer("127.0.0.1", 40000).encode(),
                                   headers=[("X-Voicebot-Call-Id", "call-42")])
            await call.hangup()
            await asyncio.sleep(0.3)
        finally:
            await ua.stop()

    asyncio.run(asyncio.wait_for(scenario(), 40))
    code, errors = finish(sipp, tmp_path)
    assert code != 0
    assert "User-to-User" in errors or "regexp" in errors.lower()
