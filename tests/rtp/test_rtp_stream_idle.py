"""A stream nobody takes caller audio from (a caller waiting in a queue) skips playout work but still drains."""

import asyncio
import random
import time

import numpy as np
import pytest

from voicebot.rtp.stream import PortAllocator, RtpStream

HOST = "127.0.0.1"


async def wait_until(predicate, limit=5.0):
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_no_concealment_without_a_listener_and_audio_still_drains():
    base = random.randrange(20000, 60000, 2)
    ports = PortAllocator(base, base + 200)
    caller = await RtpStream.open(HOST, ports)
    bot = await RtpStream.open(HOST, ports)
    try:
        caller.set_remote(HOST, bot.local_port)
        bot.set_remote(HOST, caller.local_port)
        tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.int16)
        caller.play(tone)  # 1 s of caller audio that nobody listens to
        await wait_until(lambda: bot.stats["packets_received"] >= 50 and not caller.playing)
        caller.set_hold(True)  # the caller goes quiet
        await asyncio.sleep(0.3)
        assert bot._jitter.idle and bot.stats["jitter_overflow"] == 0  # popped every tick: drained, nothing dropped
        concealed = bot.stats["jitter_concealed"]
        await asyncio.sleep(0.5)
        assert bot.stats["jitter_concealed"] == concealed  # idle and unheard: no concealment frames made

        frames: list[np.ndarray] = []
        bot.on_audio(frames.append)  # someone listens again: playout resumes (silence while the caller is quiet)
        await wait_until(lambda: len(frames) >= 10)
        assert all(len(frame) == 160 for frame in frames)
        caller.set_hold(False)
        caller.play(tone)
        await wait_until(lambda: any(np.abs(frame).max() > 4000 for frame in frames[10:]))
    finally:
        await caller.close()
        await bot.close()
