"""In-band DTMF on a real RtpStream pair: keypad tones played by one stream arrive as digits at the other only
while its in-band detection is on (the peer negotiated no telephone-event)."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest

from voicebot.rtp.inband_dtmf import dtmf_tone
from voicebot.rtp.stream import PortAllocator, RtpStream

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]
HOST = "127.0.0.1"


def keyed(digits: str) -> np.ndarray:
    gap = np.zeros(480, dtype=np.int16)
    return np.concatenate([np.concatenate([dtmf_tone(d, 70), gap]) for d in digits])


async def exchange(detect: bool) -> tuple[list[str], dict[str, object]]:
    base = random.randrange(20000, 60000, 2)
    ports = PortAllocator(base, base + 200)
    sender = await RtpStream.open(HOST, ports, dtmf_payload_type=None)
    receiver = await RtpStream.open(HOST, ports, dtmf_payload_type=None)
    try:
        sender.set_remote(HOST, receiver.local_port)
        receiver.set_remote(HOST, sender.local_port)
        receiver.detect_inband_dtmf(detect)
        assert receiver.inband_dtmf is detect
        digits: list[str] = []
        got_all = asyncio.Event()

        def on_digit(digit: str) -> None:
            digits.append(digit)
            if len(digits) == 3:
                got_all.set()

        receiver.on_dtmf(on_digit)
        played = asyncio.Event()
        sender.on_playback_done(played.set)
        sender.play(keyed("5*9"))
        await asyncio.wait_for(played.wait(), 10)
        if detect:
            await asyncio.wait_for(got_all.wait(), 5)
        else:
            silence_sent = asyncio.Event()  # the tail of the last tone has reached the receiver's ticks
            sender.on_playback_done(silence_sent.set)
            sender.play(np.zeros(1600, dtype=np.int16))
            await asyncio.wait_for(silence_sent.wait(), 5)
        return digits, receiver.stats
    finally:
        await sender.close()
        await receiver.close()


async def test_tones_become_digits_with_inband_detection() -> None:
    digits, stats = await exchange(True)
    assert digits == ["5", "*", "9"]
    assert stats["dtmf_inband"] == 3 and stats["dtmf_received"] == 3


async def test_tones_are_only_audio_without_it() -> None:
    digits, stats = await exchange(False)
    assert digits == [] and stats["dtmf_inband"] == 0
    assert stats["packets_received"] >= 25  # the tones did arrive, as audio
