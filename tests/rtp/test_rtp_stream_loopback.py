"""Two RtpStreams on loopback: audio both ways, DTMF, latching, stray and garbage datagrams, hold, RTCP."""

import asyncio
import contextlib
import logging
import random
import socket
import struct
import time

import numpy as np
import pytest

from voicebot.rtp.g711 import ulaw_encode
from voicebot.rtp.stream import PortAllocator, RtpStream

HOST = "127.0.0.1"


def allocator() -> PortAllocator:
    base = random.randrange(20000, 60000, 2)  # random range; bind failures fall through to the next pair
    return PortAllocator(base, base + 200)


def tone(frequency: float, seconds: float, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(int(8000 * seconds)) / 8000
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def dominant_frequency(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(len(pcm), 1 / 8000)[np.argmax(spectrum)])


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))


async def wait_until(predicate, limit=5.0):
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def connected_pair(**options):
    ports = allocator()
    a = await RtpStream.open(HOST, ports, **options)
    b = await RtpStream.open(HOST, ports, **options)
    try:
        a.set_remote(HOST, b.local_port)
        b.set_remote(HOST, a.local_port)
        yield a, b
    finally:
        await a.close()
        await b.close()
    assert ports.in_use == 0


def rtp_datagram(sequence: int, ssrc: int = 0x5EED, payload: bytes = b"\xff" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, sequence, sequence * 160, ssrc) + payload


@pytest.mark.asyncio
@pytest.mark.timeout(30)
@pytest.mark.parametrize("codec,payload_type", [("PCMU", 0), ("PCMA", 8)])
async def test_audio_flows_both_ways(codec, payload_type):
    async with connected_pair(codec=codec, payload_type=payload_type) as (a, b):
        heard_by_a, heard_by_b = [], []
        a.on_audio(heard_by_a.append)
        b.on_audio(heard_by_b.append)
        a.play(tone(440, 0.6))
        b.play(tone(1000, 0.6))
        assert a.playing and b.playing
        await wait_until(lambda: not a.playing and not b.playing)
        await asyncio.sleep(0.1)
    for heard, frequency in ((heard_by_b, 440), (heard_by_a, 1000)):
        assert all(frame.shape == (160,) and frame.dtype == np.int16 for frame in heard)
        audio = np.concatenate(heard)
        loud = np.array([rms(frame) for frame in heard]) > 3000
        assert loud.sum() >= 25  # ~0.6 s of tone, allowing for start-up
        assert abs(dominant_frequency(audio) - frequency) < 10
    assert a.stats["packets_received"] >= 30 and a.stats["jitter_lost"] == 0
    assert a.stats["latched"] == (HOST, b.local_port) and b.stats["latched"] == (HOST, a.local_port)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_silence_is_sent_when_nothing_queued_and_playback_can_be_stopped():
    async with connected_pair() as (a, b):
        heard, done = [], []
        b.on_audio(heard.append)
        a.on_playback_done(lambda: done.append(True))
        await wait_until(lambda: len(heard) >= 5)
        assert max(rms(frame) for frame in heard) == 0  # silence frames keep the stream alive
        a.play(tone(440, 5.0))
        await wait_until(lambda: any(rms(frame) > 3000 for frame in heard))
        a.stop_playback()
        assert not a.playing
        count = len(heard)
        await wait_until(lambda: len(heard) >= count + 10)
        assert all(rms(frame) == 0 for frame in heard[-5:])  # dropped at once, not played out
        assert done == []
        a.play(tone(440, 0.1))
        await wait_until(lambda: done == [True])


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_dtmf_digits_arrive_exactly_once():
    async with connected_pair() as (a, b):
        digits = []
        b.on_dtmf(digits.append)
        a.play(tone(440, 2.0))
        a.send_dtmf("159#*D")
        await wait_until(lambda: len(digits) >= 6)
        await asyncio.sleep(0.3)
        assert "".join(digits) == "159#*D"
        assert b.stats["dtmf_received"] == 6
        assert b.stats["jitter_lost"] == 0  # event packets keep the sequence gapless
        assert a.stats["dtmf_sent"] == 6 * (5 + 3)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_rtp_from_wrong_source_after_latching_is_dropped(caplog):
    async with connected_pair() as (a, b):
        heard = []
        b.on_audio(heard.append)
        await wait_until(lambda: b.stats["latched"] is not None)
        a.play(tone(440, 3.0))
        intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with caplog.at_level(logging.WARNING, logger="voicebot.rtp.stream"):
                for sequence in range(20):
                    intruder.sendto(rtp_datagram(sequence, payload=b"\x00" * 160), (HOST, b.local_port))
                await wait_until(lambda: b.stats["wrong_source"] == 20)
        finally:
            intruder.close()
        assert b.stats["latched"] == (HOST, a.local_port)
        assert caplog.text.count("RTP from unexpected source") == 1  # rate-limited
        count = len(heard)
        await wait_until(lambda: len(heard) >= count + 5)
        assert rms(heard[-1]) > 3000  # still hearing a, not the intruder's full-scale bytes


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_garbage_datagrams_are_counted_and_harmless():
    async with connected_pair() as (a, b):
        heard = []
        b.on_audio(heard.append)
        garbage = [b"", b"\x80", b"hello world", bytes(11), b"\x40" + bytes(20),
                   struct.pack("!BBHII", 0x82, 0, 1, 1, 1), b"\x80\xc9\x00\x09",
                   b"\x80\xc9\x00\x09" + bytes(4)]  # the last looks like RTCP (rtcp-mux) but is cut short
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for datagram in garbage:
                sender.sendto(datagram, (HOST, b.local_port))
            sender.sendto(b"\x80\xc8\x00\x01junk", (HOST, b.local_port + 1))  # bad RTCP on the RTCP port
            await wait_until(lambda: b.stats["malformed"] == 7 and b.stats["rtcp_malformed"] == 2)
        finally:
            sender.close()
        a.play(tone(440, 1.0))
        await wait_until(lambda: any(rms(frame) > 3000 for frame in heard))
        assert b.stats["latched"] == (HOST, a.local_port)  # garbage never latches


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_latches_to_actual_source_not_sdp_address():
    ports = allocator()
    stream = await RtpStream.open(HOST, ports)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        peer.bind((HOST, 0))
        peer.settimeout(2.0)
        stream.set_remote(HOST, 9)  # SDP says discard port (a NATed private address in real life)
        peer.sendto(rtp_datagram(1), (HOST, stream.local_port))
        await wait_until(lambda: stream.remote == peer.getsockname())
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(None, peer.recv, 2048)
        assert len(data) == 12 + 160 and data[1] & 0x7F == 0
        stream.set_remote(HOST, 11)  # re-INVITE moves the media: the latch is dropped
        assert stream.remote == (HOST, 11)
    finally:
        peer.close()
        await stream.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_hold_stops_sending_and_resume_restarts():
    async with connected_pair() as (a, b):
        await wait_until(lambda: b.stats["packets_received"] >= 5)
        a.set_hold(True)
        await asyncio.sleep(0.1)
        held_count = b.stats["packets_received"]
        await asyncio.sleep(0.2)
        assert b.stats["packets_received"] == held_count
        a.set_hold(False)
        await wait_until(lambda: b.stats["packets_received"] >= held_count + 5)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_rtcp_reports_and_bye():
    async with connected_pair(rtcp_interval=0.1) as (a, b):
        await wait_until(lambda: "remote_fraction_lost" in a.stats and "remote_fraction_lost" in b.stats)
        assert a.stats["rtcp_received"] >= 1 and a.stats["remote_fraction_lost"] == 0
        await wait_until(lambda: "round_trip_ms" in a.stats)
        assert 0 <= a.stats["round_trip_ms"] < 1000
        await a.close()
        await wait_until(lambda: b.stats.get("remote_bye") is True)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_bind_failure_falls_back_to_next_pair_and_close_releases():
    ports = allocator()
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        try:
            blocker.bind((HOST, ports.start + 1))  # the first pair's RTCP port
        except OSError:
            pytest.fail("could not occupy the test port; rerun")
        stream = await RtpStream.open(HOST, ports)
        assert stream.local_port != ports.start and stream.local_port % 2 == 0
        assert ports.in_use == 1
        await stream.close()
        await stream.close()  # idempotent
        assert ports.in_use == 0
    finally:
        blocker.close()


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_invalid_arguments_are_rejected():
    ports = allocator()
    with pytest.raises(ValueError, match="unsupported codec"):
        await RtpStream.open(HOST, ports, codec="G729")
    with pytest.raises(ValueError, match="equals the audio payload type"):
        await RtpStream.open(HOST, ports, dtmf_payload_type=0)
    stream = await RtpStream.open(HOST, ports, dtmf_payload_type=None)
    try:
        with pytest.raises(ValueError, match="must be an IP address"):
            stream.set_remote("example.com", 5000)
        with pytest.raises(ValueError, match="outside 1..65535"):
            stream.set_remote(HOST, 0)
        with pytest.raises(TypeError, match="int16"):
            stream.play(np.zeros(160, dtype=np.float32))
        with pytest.raises(RuntimeError, match="no telephone-event"):
            stream.send_dtmf("1")
    finally:
        await stream.close()
    assert ports.in_use == 0


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_packets_with_extension_padding_and_csrcs_are_decoded():
    """A raw peer sends tone packets carrying header extensions, CSRCs and padding, then a DTMF event."""
    from voicebot.rtp.dtmf import DtmfSender
    from voicebot.rtp.packet import RtpExtension, RtpPacket

    ports = allocator()
    stream = await RtpStream.open(HOST, ports)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    heard, digits = [], []
    stream.on_audio(heard.append)
    stream.on_dtmf(digits.append)
    try:
        peer.bind((HOST, 0))
        stream.set_remote(*peer.getsockname())
        audio = ulaw_encode(tone(440, 0.4))
        sequence = 0
        for n in range(20):
            packet = RtpPacket(0, sequence, n * 160, 0xABC, audio[n * 160:(n + 1) * 160], n == 0, (1, 2),
                               RtpExtension(0xBEDE, b"\x10\x01\x00\x00"))
            padded = bytearray(packet.serialize()) + b"\x00\x00\x00\x04"
            padded[0] |= 0x20
            peer.sendto(bytes(padded), (HOST, stream.local_port))
            sequence += 1
            await asyncio.sleep(0.02)
        for dtmf in DtmfSender().packets("7"):
            peer.sendto(RtpPacket(101, sequence, 20 * 160, 0xABC, dtmf.payload, dtmf.marker).serialize(),
                        (HOST, stream.local_port))
            sequence += 1
        peer.sendto(struct.pack("!BBHII", 0x80, 0, sequence, 0, 0xABC), (HOST, stream.local_port))  # empty
        await wait_until(lambda: digits == ["7"] and stream.stats["malformed"] == 1)
        await wait_until(lambda: sum(rms(frame) > 3000 for frame in heard) >= 15)
        assert stream.stats["packets_received"] == 20 + 8 and stream.stats["jitter_lost"] == 0
    finally:
        peer.close()
        await stream.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_failing_user_callback_does_not_stop_the_stream():
    async with connected_pair() as (a, b):
        calls = []

        def broken(frame):
            calls.append(frame)
            raise RuntimeError("application bug")

        b.on_audio(broken)
        await wait_until(lambda: len(calls) >= 10)
        assert b.stats["callback_errors"] >= 10
        sent = b.stats["packets_sent"]
        await wait_until(lambda: b.stats["packets_sent"] >= sent + 5)  # still ticking
