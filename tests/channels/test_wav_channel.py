"""WavChannel: pacing, scripted DTMF, bot recording aligned to the caller timeline, hang-up, bad input."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicebot.channels.base import Dtmf, HungUp
from voicebot.channels.wav import FRAME, RATE, WavChannel, load_caller_audio

pytestmark = pytest.mark.timeout(30)


def tone(seconds: float, rate: int, freq: float = 440.0, level: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * level).astype(np.int16)


@pytest.mark.asyncio
async def test_frames_are_16k_20ms_and_the_call_ends_after_input_plus_tail(tmp_path: Path) -> None:
    channel = WavChannel(tone(1.0, 8000), 8000, tail_s=0.4, speed=20, record_path=tmp_path / "out.wav")
    frames: list[np.ndarray] = []
    channel.on_audio(frames.append)
    await channel.wait_closed()
    assert len(frames) == round(1.4 / 0.02)
    assert {len(f) for f in frames} == {FRAME} and FRAME == 320
    assert np.abs(frames[10]).max() > 4000 and np.abs(frames[-1]).max() == 0  # tone, then the silent tail
    assert channel.ended == "caller hangup" and channel.events[-1].kind == "caller_hangup"
    assert isinstance(await channel.next_event(0), HungUp)
    assert isinstance(await channel.next_event(0), HungUp)  # the call stays over
    recorded, rate = soundfile.read(str(tmp_path / "out.wav"), dtype="int16")
    assert rate == RATE and recorded.shape == (int(1.4 * RATE), 2)


@pytest.mark.asyncio
async def test_bot_audio_is_recorded_where_it_played_on_the_caller_timeline(tmp_path: Path) -> None:
    channel = WavChannel(np.zeros(RATE, np.int16), RATE, tail_s=0, speed=25, record_path=tmp_path / "out.wav")
    seen = 0

    def on_frame(_frame: np.ndarray) -> None:
        nonlocal seen
        seen += 1
        if seen == 10:  # on the 10th frame (0.18–0.20 s) the bot answers with 0.3 s of 22.05 kHz audio
            channel.play(tone(0.3, 22050, 300), 22050)

    channel.on_audio(on_frame)
    await channel.wait_playback()
    assert not channel.playing
    await channel.wait_closed()
    [segment] = channel.bot_segments
    assert segment.start_s == pytest.approx(0.18) and segment.end_s == pytest.approx(0.48, abs=0.021)
    assert not segment.stopped
    bot = channel.recording()[:, 1]
    start = int(segment.start_s * RATE)
    assert np.abs(bot[:start]).max() == 0 and np.abs(bot[start:start + 320]).max() > 1000
    assert np.abs(bot[int(0.5 * RATE):]).max() == 0
    assert channel.bot_audio_after(0.1) == pytest.approx(0.18) and channel.bot_audio_after(0.3) is None


@pytest.mark.asyncio
async def test_stop_playback_cuts_the_bot_at_once() -> None:
    channel = WavChannel(np.zeros(RATE, np.int16), RATE, tail_s=0, speed=25)
    ticks = 0

    def on_frame(_frame: np.ndarray) -> None:
        nonlocal ticks
        ticks += 1
        if ticks == 5:
            channel.play(tone(2.0, RATE), RATE)
        elif ticks == 15:
            channel.stop_playback()

    channel.on_audio(on_frame)
    await channel.wait_closed()
    [segment] = channel.bot_segments
    assert segment.stopped and segment.end_s - segment.start_s == pytest.approx(0.2, abs=0.021)
    bot = channel.recording()[:, 1]
    assert np.abs(bot[int(segment.end_s * RATE):]).max() == 0
    assert [e.kind for e in channel.events] == ["play", "stop_playback", "caller_hangup"]


@pytest.mark.asyncio
async def test_scripted_dtmf_arrives_at_its_time_and_cancelled_waits_lose_nothing() -> None:
    channel = WavChannel(np.zeros(RATE, np.int16), RATE, dtmf=[(0.5, "7"), (0.1, "1")], tail_s=0, speed=10)
    waiter = asyncio.ensure_future(channel.next_event(None))

    def on_frame(_frame: np.ndarray) -> None:
        if channel.events and not waiter.done():
            waiter.cancel()  # cancelled in the very tick the digit arrives: it must not swallow it

    await asyncio.sleep(0)
    channel.on_audio(on_frame)
    await channel.wait_closed()
    assert waiter.cancelled()
    assert [(e.at_s, e.detail) for e in channel.events if e.kind == "dtmf"] == [(0.1, "1"), (0.5, "7")]
    assert await channel.next_event(0) == Dtmf("1", "wav")
    assert await channel.next_event(0) == Dtmf("7", "wav")
    assert isinstance(await channel.next_event(0), HungUp)


@pytest.mark.asyncio
async def test_bot_hangup_ends_the_call_and_writes_the_recording(tmp_path: Path) -> None:
    channel = WavChannel(np.zeros(5 * RATE, np.int16), RATE, speed=10, record_path=tmp_path / "bot.wav")
    channel.on_audio(lambda _frame: None)
    await asyncio.sleep(0.05)
    channel.play(tone(3.0, RATE), RATE)
    await channel.hangup()
    assert channel.ended == "bot hangup" and channel.bot_segments[0].stopped
    assert channel.now_s < 1.0
    assert (tmp_path / "bot.wav").exists()
    channel.play(tone(0.1, RATE), RATE)  # after the end: ignored
    assert not channel.playing
    assert await channel.transfer("sip:agent@example.com") and channel.transfers == ["sip:agent@example.com"]


def test_caller_wav_at_any_rate_and_channel_count_becomes_16k_mono(tmp_path: Path) -> None:
    path = tmp_path / "caller.wav"
    stereo = np.stack([tone(0.5, 8000), tone(0.5, 8000)], axis=1)
    soundfile.write(str(path), stereo, 8000, subtype="PCM_16")
    audio = load_caller_audio(path)
    assert audio.dtype == np.int16 and audio.ndim == 1 and len(audio) == RATE // 2
    assert WavChannel(path).duration_s == pytest.approx(2.5)


@pytest.mark.parametrize("kwargs,message", [
    ({"caller": np.zeros(10, np.int16)}, "needs its sample rate"),
    ({"caller": np.zeros((10, 2), np.int16), "rate": 8000}, "must be mono"),
    ({"caller": np.zeros(10, np.float32), "rate": 8000}, "must be int16"),
    ({"caller": np.zeros(10, np.int16), "rate": 8000, "speed": 0}, "speed must be > 0"),
    ({"caller": np.zeros(10, np.int16), "rate": 8000, "tail_s": -1}, "tail_s must be >= 0"),
    ({"caller": np.zeros(10, np.int16), "rate": 8000, "dtmf": [(1.0, "x")]}, "bad scripted DTMF"),
    ({"caller": np.zeros(10, np.int16), "rate": 8000, "dtmf": [(-1.0, "1")]}, "bad scripted DTMF"),
])
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WavChannel(**kwargs)


def test_missing_caller_wav_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        WavChannel(tmp_path / "nope.wav")
