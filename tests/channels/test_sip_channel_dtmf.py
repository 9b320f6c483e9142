"""SipChannel's digit sources: in-band tones, RFC 4733 and SIP INFO; a peer that keys by INFO while its tones are
also in the audio gets each key once, and in-band detection is switched off for the rest of the call."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import Any

import pytest

from voicebot.channels.base import Dtmf
from voicebot.channels.sip import SipChannel
from voicebot.rtp.stream import PortAllocator, RtpStream
from voicebot.sip.call import CallEvents

pytestmark = pytest.mark.asyncio


async def channel_with_stream(inband: bool) -> tuple[SipChannel, RtpStream, Any]:
    base = random.randrange(20000, 60000, 2)
    stream = await RtpStream.open("127.0.0.1", PortAllocator(base, base + 20), dtmf_payload_type=None)
    stream.detect_inband_dtmf(inband)
    call = SimpleNamespace(events=CallEvents(), call_id="c1", ended=asyncio.Event())  # what SipChannel reads
    return SipChannel(call, stream), stream, call  # type: ignore[arg-type]


async def test_inband_digit_then_the_same_key_by_info_is_one_digit() -> None:
    channel, stream, call = await channel_with_stream(True)
    try:
        stream._inband_digits(["7"])  # noqa: SLF001 - what the ticker does when the detector finds a tone
        call.events.dtmf.emit("7", "info")
        assert not stream.inband_dtmf  # the peer keys by INFO from now on
        call.events.dtmf.emit("8", "info")
        assert channel.digits_received == [Dtmf("7", "inband"), Dtmf("8", "info")]
    finally:
        await stream.close()


async def test_without_inband_every_info_digit_counts() -> None:
    channel, stream, call = await channel_with_stream(False)
    try:
        call.events.dtmf.emit("7", "info")
        call.events.dtmf.emit("7", "info")
        assert [d.digit for d in channel.digits_received] == ["7", "7"]
    finally:
        await stream.close()
