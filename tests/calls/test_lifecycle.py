"""CallLifecycle (voicebot.calls.lifecycle): whatever the session does, the call is torn down the one way — the
recording closed, the leg released, the record closed in the SQLite journal, the after-call hook run once the
record is written, the "call ended" line logged — for a SIP call (two real user agents on loopback) and a browser
call (a real WebRtcChannel); a dialplan session's lines reach the record, the quality check and its alert hook."""

from __future__ import annotations

import asyncio
import logging
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile
from aiortc import RTCPeerConnection

from tests.integration.support import free_udp_ports
from voicebot.calls.conversation import DialplanSession
from voicebot.compliance.alerts import QualityAlert
from voicebot.calls.keypad_session import CallRecord
from voicebot.calls.legs import BrowserLeg, SipLeg
from voicebot.calls.lifecycle import CallLifecycle, CallServices, LegEnd
from voicebot.calls.recording import CallRecorder
from voicebot.channels.base import Channel
from voicebot.channels.text import TextChannel
from voicebot.channels.webrtc import WebRtcChannel
from voicebot.compliance.lint import DEFAULT_POLICY_DIR, load_policies
from voicebot.dialplan.events import CallContext
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.schema import Dialplan
from voicebot.handoff.dialer import OutboundDialer
from voicebot.records.journal import CallJournal
from voicebot.records.store import SqliteRecordStore
from voicebot.rtp.ports import PortAllocator
from voicebot.rtp.stream import RtpStream
from voicebot.sip.call import SipCall
from voicebot.sip.sdp import negotiate, parse_sdp
from voicebot.sip.transport import EgressPolicy
from voicebot.sip.ua import UserAgent
from voicebot.web.routes import ice_configuration
from voicebot.yamlsrc import load_yaml_text, validate

LOOPBACK = EgressPolicy(["127.0.0.0/8"])


class SessionBug(Exception):
    pass


class CrashingSession:
    """A session with a bug: it raises in the middle of the call (after ``before`` ran)."""

    def __init__(self, before: object = None) -> None:
        self.before = before

    async def run(self) -> str:
        if callable(self.before):
            self.before()
        raise SessionBug("session bug")


def ports() -> PortAllocator:
    start = free_udp_ports(1, span=20, even=True)[0]
    return PortAllocator(start, start + 20)


def closed_record(store: SqliteRecordStore, call_id: str) -> tuple[list[str], dict[str, object]]:
    kinds = [event.kind for event in store.events(call_id)]
    ended = [event.data for event in store.events(call_id) if event.kind == "call_ended"]
    assert len(ended) == 1, kinds
    return kinds, ended[0]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_sip_session_that_raises_still_hangs_up_closes_the_recording_and_the_record(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    journal = CallJournal(store)
    bot_ports, caller_ports = ports(), ports()
    after_call: list[tuple[str, object]] = []
    torn_down = asyncio.Event()

    def opened_case(call_id: str) -> None:  # runs once the record's end is queued: flushed, it is in the store
        assert journal.flush()
        after_call.append((call_id, store.events(call_id)[-1].kind))
        torn_down.set()

    services = CallServices(journal=journal, after_call=opened_case, recording_dir=tmp_path / "recordings")
    lives: list[CallLifecycle] = []

    async def on_invite(call: SipCall) -> None:
        stream = await RtpStream.open("127.0.0.1", bot_ports, "PCMU", 0, 101)
        leg = SipLeg(call, stream)
        record = CallRecord(call_id=call.call_id, from_=call.from_header, to=call.to_header)
        async with CallLifecycle(leg, record, services) as life:
            lives.append(life)
            negotiated = negotiate(parse_sdp(call.remote_sdp), "127.0.0.1", stream.local_port, ["PCMU"])
            stream.set_remote(negotiated.remote_host, negotiated.remote_port)
            assert await call.answer(negotiated.answer.encode())
            life.start(caller="5550100", callee="1000", dialplan="broken")
            await life.run(CrashingSession(lambda: leg.channel.play(np.full(16000, 1000, np.int16), 16000)))

    bot = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
    bot.accept_calls(on_invite)
    caller = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
    await bot.start()
    await caller.start()
    try:
        dialer = OutboundDialer(caller, caller_ports, media_host="127.0.0.1", dtmf_payload_type=101,
                                egress=LOOPBACK)
        with caplog.at_level(logging.INFO):
            leg = await dialer.dial(f"sip:1000@127.0.0.1:{bot.port}", [], ["PCMU"], timeout_s=5)
            try:
                await asyncio.wait_for(leg.ended.wait(), 5)  # the bot's side hung up although its session crashed
                await asyncio.wait_for(torn_down.wait(), 5)
            finally:
                await leg.close()
    finally:
        await caller.stop()
        await bot.stop()

    [life] = lives
    call_id = life.call_id
    assert leg.call.end_reason and bot_ports.in_use == 0  # BYE received; the bot's RTP port is free again
    kinds, ended = closed_record(store, call_id)
    assert kinds[0] == "call_started" and kinds[-1] == "call_ended"
    assert ended["end_reason"] == "session ended" and ended["outcome"] == ""
    assert isinstance(ended["duration_s"], float) and "rtp_sent" in ended
    assert after_call == [(call_id, "call_ended")]
    recording = life.record.recording or {}
    assert ended["recording"] == recording["path"] and "error" not in recording
    audio, rate = soundfile.read(recording["path"], dtype="int16")
    assert rate == 8000 and audio.ndim == 2  # a complete WAV file: the recorder was closed
    logged = [r for r in caplog.records if r.getMessage() == "call ended"]
    assert len(logged) == 1 and logged[0].fields["call_id"] == call_id  # type: ignore[attr-defined]
    assert logged[0].fields["end_reason"] == "session ended"  # type: ignore[attr-defined]
    assert any(r.getMessage() == "call handler crashed" for r in caplog.records)  # the bug still surfaces
    journal.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_browser_session_that_raises_still_closes_the_recording_and_the_record(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    journal = CallJournal(store)
    cases: list[str] = []
    channel = WebRtcChannel(RTCPeerConnection(ice_configuration([])), "browser-1")
    record = CallRecord(call_id=channel.call_id, from_="browser", to="demo", dialplan="demo")
    services = CallServices(journal=journal, after_call=cases.append, recording_dir=tmp_path / "recordings")
    frame = np.full(320, 2000, np.int16)  # 20 ms at 16 kHz
    life = CallLifecycle(BrowserLeg(channel), record, services)

    def talk() -> None:
        for _ in range(10):
            channel._sent(frame)  # what the page is sent: paces the recording

    try:
        with caplog.at_level(logging.INFO), pytest.raises(SessionBug):
            async with life:
                life.start(caller="browser", callee="demo", dialplan="demo")
                await life.run(CrashingSession(talk))
    finally:
        await channel.close()
    assert journal.flush()
    kinds, ended = closed_record(store, channel.call_id)
    assert kinds == ["call_started", "call_ended"]
    assert ended["end_reason"] == "browser call ended" and cases == [channel.call_id]
    recorder = life.recorder
    assert isinstance(recorder, CallRecorder) and recorder.frames >= 8  # (the 16 -> 8 kHz resampler's delay)
    audio, _ = soundfile.read(str(recorder.path), dtype="int16")
    assert len(audio) == recorder.frames * 160 > 0  # the buffered rows were written: the recorder was closed
    frames = recorder.frames
    for _ in range(5):
        channel._sent(frame)
    assert recorder.frames == frames  # and detached from the channel
    assert [r for r in caplog.records if r.getMessage() == "browser call ended"]
    journal.close()


class TextLeg:
    """A scripted text caller (voicebot.channels.text) as a lifecycle leg: nothing to record or release."""

    kind = "text"

    def __init__(self, channel: TextChannel) -> None:
        self._channel = channel

    @property
    def channel(self) -> Channel:
        return self._channel

    def record_to(self, directory: Path) -> CallRecorder:
        raise AssertionError("not recorded")

    def stop_recording(self) -> None:
        return None

    async def release(self) -> None:
        return None

    def ended(self) -> LegEnd:
        return LegEnd(end_reason=self._channel.ended or "")


PLAN = """
dialplan: finance
start: pitch
nodes:
  pitch:
    say: "Our Gold fund has guaranteed returns of 5 percent."
    hangup: true
"""


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_dialplan_sessions_lines_reach_the_record_the_quality_check_and_the_alert_hook(
        tmp_path: Path) -> None:
    data, lines = load_yaml_text(textwrap.dedent(PLAN), "finance.yaml")
    plan = validate(Dialplan, data, lines, "finance.yaml")
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    journal = CallJournal(store)
    alerts: list[tuple[str, str, QualityAlert]] = []
    handed = {"text-call": "callback"}
    services = CallServices(journal=journal, policies=load_policies(DEFAULT_POLICY_DIR),
                            on_quality_alert=lambda *alert: alerts.append(alert), handed_over=lambda cid: handed.pop(cid, None))
    channel = TextChannel([], idle_timeout_s=5)
    record = CallRecord(call_id=channel.call_id, from_="text", to="finance")
    async with CallLifecycle(TextLeg(channel), record, services) as life:
        life.start(caller="5550100", callee="finance", dialplan="finance")
        session = DialplanSession(channel, Interpreter(plan), CallContext(caller="5550100", channel="text",
                                                                          call_id=channel.call_id),
                                  channel.speech, None, events=life.events)
        await asyncio.wait_for(life.run(session), 20)
    assert journal.flush()
    kinds = [event.kind for event in store.events(channel.call_id)]
    assert kinds.index("quality") == kinds.index("bot") + 1 and kinds[-1] == "call_ended", kinds
    [(call_id, dialplan, flag)] = alerts
    assert (call_id, dialplan, flag.rule, flag.speaker) == (channel.call_id, "finance", "guaranteed returns", "bot")
    assert [e["who"] for e in record.transcript if e["who"] == "bot"] == ["bot"]
    assert record.outcome == "callback" and handed == {}  # a caller this node handed over keeps that outcome
    journal.close()


class StuckLeg(TextLeg):
    """A leg whose hang-up fails (e.g. the transport is gone)."""

    async def release(self) -> None:
        raise OSError("transport gone")


@pytest.mark.asyncio
async def test_a_leg_that_fails_to_release_still_gets_its_record_closed_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    journal = CallJournal(store)
    channel = TextChannel([])
    record = CallRecord(call_id=channel.call_id, from_="text", to="demo")
    with caplog.at_level(logging.INFO), pytest.raises(SessionBug):
        async with CallLifecycle(StuckLeg(channel), record, CallServices(journal=journal)) as life:
            life.start(dialplan="demo")
            await life.run(CrashingSession())
    assert journal.flush()
    assert [event.kind for event in store.events(channel.call_id)] == ["call_started", "call_ended"]
    messages = [r.getMessage() for r in caplog.records]
    assert "releasing the call's leg failed" in messages and messages[-1] == "call ended"
    journal.close()
