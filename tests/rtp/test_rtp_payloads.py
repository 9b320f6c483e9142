"""Shared encoded payloads: a read-only prompt or hold audio is G.711-encoded once per codec for every stream."""

import asyncio
import gc
import random

import numpy as np
import pytest

from voicebot.calls.hold import load_hold_audio
from voicebot.rtp.g711 import get_codec
from voicebot.rtp.payloads import EncodedPayloads, shared_payloads
from voicebot.rtp.stream import PortAllocator, RtpStream
from voicebot.sip.call import CallEvents

PCMU, PCMA = get_codec("PCMU"), get_codec("PCMA")


def frozen(pcm: np.ndarray) -> np.ndarray:
    pcm.flags.writeable = False
    return pcm


def noise(samples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-20000, 20000, samples, dtype=np.int16)


def test_read_only_audio_is_encoded_once_per_codec():
    cache = EncodedPayloads()
    pcm = frozen(noise(1600, 1))
    first = cache.encode(PCMU, pcm)
    assert first == PCMU.encode(pcm) and cache.encode(PCMU, pcm) is first
    alaw = cache.encode(PCMA, pcm)
    assert alaw == PCMA.encode(pcm) and alaw != first and cache.encode(PCMA, pcm) is alaw
    assert (cache.hits, cache.misses, len(cache), cache.bytes) == (2, 2, 2, 3200)


def test_writable_audio_is_never_cached_since_it_may_change():
    cache = EncodedPayloads()
    pcm = noise(800, 2)
    assert cache.encode(PCMU, pcm) == PCMU.encode(pcm)
    pcm[:] = 0
    assert cache.encode(PCMU, pcm) == PCMU.encode(np.zeros(800, dtype=np.int16))
    assert len(cache) == 0 and cache.hits == 0


def test_bounded_by_items_and_bytes_least_recently_used_first():
    cache = EncodedPayloads(max_items=2, max_bytes=1000)
    a, b, c = (frozen(noise(400, seed)) for seed in (3, 4, 5))
    cache.encode(PCMU, a)
    cache.encode(PCMU, b)
    cache.encode(PCMU, a)  # a is now the most recent
    cache.encode(PCMU, c)  # evicts b
    assert len(cache) == 2 and cache.bytes == 800
    hits = cache.hits
    cache.encode(PCMU, a)
    assert cache.hits == hits + 1
    cache.encode(PCMU, b)
    assert cache.hits == hits + 1  # b was evicted: encoded again
    big = frozen(noise(1200, 6))
    assert cache.encode(PCMU, big) == PCMU.encode(big) and cache.bytes <= 1000  # larger than the cache: not kept
    with pytest.raises(ValueError, match="positive"):
        EncodedPayloads(max_items=0)


def test_a_recycled_array_id_never_returns_another_arrays_payload():
    cache = EncodedPayloads(max_items=64)
    for seed in range(200):  # freed arrays' ids get reused by the next ones
        pcm = frozen(noise(160, seed))
        assert cache.encode(PCMU, pcm) == PCMU.encode(pcm)
        del pcm
        gc.collect()


def test_hold_audio_is_read_only():
    audio = load_hold_audio(None)
    with pytest.raises(ValueError):
        audio[0] = 1


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_streams_playing_the_same_hold_audio_share_one_payload():
    base = random.randrange(20000, 60000, 2)
    ports = PortAllocator(base, base + 200)
    hold = load_hold_audio(None)
    shared = shared_payloads()
    misses, hits = shared.misses, shared.hits
    streams = [await RtpStream.open("127.0.0.1", ports) for _ in range(3)]
    receiver = await RtpStream.open("127.0.0.1", ports)
    frames: list[np.ndarray] = []
    receiver.on_audio(frames.append)
    try:
        streams[0].set_remote("127.0.0.1", receiver.local_port)
        for stream in streams:
            stream.play(hold)
        assert (shared.misses, shared.hits) == (misses + 1, hits + 2)
        for _ in range(300):
            if len(frames) >= 20:
                break
            await asyncio.sleep(0.01)
        received = np.concatenate(frames[:20])
        sent = PCMU.decode(PCMU.encode(hold[: len(received) + 4000]))
        start = next(i for i in range(0, 4000, 160) if np.array_equal(sent[i:i + 160], received[:160]))
        assert np.array_equal(received, sent[start:start + len(received)])  # the hold music arrives intact
    finally:
        for stream in [*streams, receiver]:
            await stream.close()


def test_views_of_immutable_audio_share_by_offset_but_views_of_writable_audio_do_not():
    cache = EncodedPayloads()
    prompt = frozen(noise(4000, 7))
    trimmed = [prompt[800:], prompt[800:]]  # a trimmed prompt is a new view object each time
    first = cache.encode(PCMU, trimmed[0])
    assert cache.encode(PCMU, trimmed[1]) is first and first == PCMU.encode(prompt[800:])
    assert cache.encode(PCMU, prompt[801:]) == PCMU.encode(prompt[801:]) != first  # another offset
    assert cache.encode(PCMU, prompt[800::2]) == PCMU.encode(prompt[800::2])  # another stride
    writable = noise(4000, 8)
    view = writable[100:]
    view.flags.writeable = False  # read-only view, but the memory can still change through `writable`
    assert cache.encode(PCMU, view) == PCMU.encode(view)
    writable[100:] = 0
    assert cache.encode(PCMU, view) == PCMU.encode(np.zeros(3900, dtype=np.int16))
    from_bytes = np.frombuffer(noise(400, 9).tobytes(), dtype=np.int16)  # read-only, memory owned by bytes
    assert cache.encode(PCMU, from_bytes) is cache.encode(PCMU, from_bytes)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_sip_channels_resample_and_encode_a_cached_prompt_once():
    from types import SimpleNamespace

    from voicebot.channels import sip
    from voicebot.speech.resample import resample

    base = random.randrange(20000, 60000, 2)
    ports = PortAllocator(base, base + 200)
    prompt = frozen((6000 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)).astype(np.int16))  # 1 s, 16 kHz
    streams = [await RtpStream.open("127.0.0.1", ports) for _ in range(3)]
    try:
        channels = [sip.SipChannel(SimpleNamespace(call_id=f"c{i}", events=CallEvents()), s) for i, s in enumerate(streams)]
        wire_hits, payload_hits = sip._wire_audio.hits, shared_payloads().hits
        for channel in channels:
            channel.play(prompt[160:], 16000)  # trimmed: a fresh view per call
        assert sip._wire_audio.hits == wire_hits + 2 and shared_payloads().hits == payload_hits + 2
        queued = [s._playback[0] for s in streams]
        assert queued[0] is queued[1] is queued[2]
        assert queued[0] == PCMU.encode(resample(prompt[160:], 16000, 8000))
        one_off = noise(1600, 10)  # writable (e.g. dynamic text): resampled for this call only, not kept
        size = len(sip._wire_audio)
        channels[0].play(one_off, 16000)
        assert len(sip._wire_audio) == size and streams[0]._playback[-1] == PCMU.encode(resample(one_off, 16000, 8000))
    finally:
        for stream in streams:
            await stream.close()
