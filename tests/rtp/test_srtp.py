"""SRTP through libsrtp: protect/unprotect round trip, tampering and replays refused; two RtpStreams keyed by SDES
exchange audio and DTMF encrypted on the wire and drop forged packets without failing."""

from __future__ import annotations

import asyncio
import secrets
import socket
import struct

import numpy as np
import pytest

from tests.rtp.test_rtp_stream_loopback import HOST, allocator, dominant_frequency, tone, wait_until
from voicebot.rtp.g711 import ulaw_encode
from voicebot.rtp.srtp import SRTP_TOTALS, SrtpContext, SrtpDropped
from voicebot.rtp.stream import RtpStream
from voicebot.sip.sdp import SrtpKeys

SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")


def rtp(sequence: int, payload: bytes = b"\x55" * 160, ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, sequence, sequence * 160, ssrc) + payload


def pair(suite: str) -> tuple[SrtpContext, SrtpContext]:
    a_key, b_key = secrets.token_bytes(30), secrets.token_bytes(30)
    return SrtpContext(suite, a_key, b_key), SrtpContext(suite, b_key, a_key)


@pytest.mark.parametrize("suite,tag_bytes", [(SUITES[0], 10), (SUITES[1], 4)])
def test_round_trip_encrypts_and_authenticates(suite: str, tag_bytes: int) -> None:
    a, b = pair(suite)
    plain = rtp(7)
    protected = a.protect(plain)
    assert len(protected) == len(plain) + tag_bytes
    assert protected[:12] == plain[:12] and protected[12:172] != plain[12:]  # header clear, payload encrypted
    assert b.unprotect(protected) == plain
    rtcp = struct.pack("!BBHI", 0x80, 201, 1, 0x1234)
    assert b.unprotect_rtcp(a.protect_rtcp(rtcp)) == rtcp


def test_tampered_replayed_and_wrong_key_packets_are_refused() -> None:
    a, b = pair(SUITES[0])
    before = SRTP_TOTALS.counts
    protected = a.protect(rtp(1))
    tampered = bytearray(protected)
    tampered[20] ^= 0x01
    with pytest.raises(SrtpDropped) as info:
        b.unprotect(bytes(tampered))
    assert info.value.kind == "auth"
    quiet = SRTP_TOTALS.dropped_auth
    with pytest.raises(SrtpDropped):
        b.unprotect(bytes(tampered), count_drop=False)  # a first try among several keys (rekey window)
    assert SRTP_TOTALS.dropped_auth == quiet
    assert b.unprotect(protected) == rtp(1)
    with pytest.raises(SrtpDropped) as info:
        b.unprotect(protected)
    assert info.value.kind == "replay"
    stranger, _ = pair(SUITES[0])
    with pytest.raises(SrtpDropped) as info:
        b.unprotect(stranger.protect(rtp(2)))
    assert info.value.kind == "auth"
    with pytest.raises(SrtpDropped):
        b.unprotect(b"\x80\x00")  # too short to be anything
    after = SRTP_TOTALS.counts
    assert after["dropped_auth"] - before["dropped_auth"] == 2  # the quiet try not among them
    assert after["dropped_replay"] - before["dropped_replay"] == 1
    assert 'voicebot_srtp_packets_total{result="dropped_auth"}' in SRTP_TOTALS.prometheus()
    assert repr(a) == f"SrtpContext({SUITES[0]})"  # no key material


def keys(suite: str) -> tuple[SrtpKeys, SrtpKeys]:
    a_key, b_key = secrets.token_bytes(30), secrets.token_bytes(30)
    return SrtpKeys(suite, 1, a_key, b_key), SrtpKeys(suite, 1, b_key, a_key)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
@pytest.mark.parametrize("suite", SUITES)
async def test_streams_exchange_audio_and_dtmf_encrypted(suite: str) -> None:
    ports = allocator()
    a = await RtpStream.open(HOST, ports)
    b = await RtpStream.open(HOST, ports)
    sniffer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sniffer.bind((HOST, 0))
    sniffer.setblocking(False)
    try:
        a_keys, b_keys = keys(suite)
        a.apply_sdes(a_keys)
        b.apply_sdes(b_keys)
        heard: list[np.ndarray] = []
        digits: list[str] = []
        b.on_audio(heard.append)
        b.on_dtmf(digits.append)
        # first what A sends goes to a sniffer: it must not be readable PCMU of the tone
        a.set_remote(HOST, sniffer.getsockname()[1])
        sent = tone(440, 0.4)
        a.play(sent)
        await wait_until(lambda: not a.playing)
        captured = []
        while True:
            try:
                captured.append(sniffer.recv(2048))
            except BlockingIOError:
                break
        plain_payloads = {bytes(ulaw_encode(sent[i:i + 160])) for i in range(0, len(sent), 160)}
        assert len(captured) >= 15
        assert not any(packet[12:172] in plain_payloads for packet in captured)
        # then to B, which decrypts: the tone arrives, DTMF too (B answers only now: A would latch onto it)
        a.set_remote(HOST, b.local_port)
        b.set_remote(HOST, a.local_port)
        a.play(tone(440, 0.6))
        await wait_until(lambda: not a.playing)
        a.send_dtmf("5#")
        await wait_until(lambda: digits == ["5", "#"])
        audio = np.concatenate(heard)
        assert abs(dominant_frequency(audio[audio != 0][:2400]) - 440) < 20
        stats = b.stats
        assert stats["srtp"] == suite and stats["srtp_auth_failed"] == 0 and stats["dtmf_received"] >= 2
        # forged packets from the latched peer's address family: dropped, counted, no crash
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger:
            forger.bind((HOST, 0))
            for sequence in range(5):
                forger.sendto(rtp(sequence, secrets.token_bytes(170)), (HOST, b.local_port))
        await asyncio.sleep(0.2)
        assert b.stats["srtp_auth_failed"] == 0  # other source: refused by latching first
        assert b.stats["wrong_source"] >= 5
    finally:
        await a.close()
        await b.close()
        sniffer.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_garbage_before_latching_is_counted_as_auth_failure_and_does_not_latch() -> None:
    ports = allocator()
    b = await RtpStream.open(HOST, ports)
    try:
        b.apply_sdes(keys(SUITES[0])[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger:
            forger.bind((HOST, 0))
            for sequence in range(20):
                forger.sendto(rtp(sequence, secrets.token_bytes(170)), (HOST, b.local_port))
            await wait_until(lambda: b.stats["srtp_auth_failed"] == 20)
        assert b.stats["latched"] is None and b.stats["packets_received"] == 0
    finally:
        await b.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_rekey_accepts_the_new_key_and_packets_in_flight_under_the_old() -> None:
    ports = allocator()
    a = await RtpStream.open(HOST, ports)
    b = await RtpStream.open(HOST, ports)
    try:
        a_keys, b_keys = keys(SUITES[0])
        a.apply_sdes(a_keys)
        b.apply_sdes(b_keys)
        a.set_remote(HOST, b.local_port)
        a.play(tone(440, 0.2))
        await wait_until(lambda: b.stats["packets_received"] >= 5)
        b.apply_sdes(b_keys)  # same keys: nothing changes
        assert b.stats["srtp_rekeys"] == 0
        a2, b2 = keys(SUITES[1])
        b.apply_sdes(b2)  # B learns the new keys before A switches (a re-INVITE's answer in flight)
        assert b.stats["srtp_rekeys"] == 1
        received = b.stats["packets_received"]
        await wait_until(lambda: b.stats["packets_received"] >= received + 5)  # old key still accepted
        assert b.stats["srtp_auth_failed"] == 0
        a.apply_sdes(a2)
        received = b.stats["packets_received"]
        await wait_until(lambda: b.stats["packets_received"] >= received + 10)
        assert b.stats["srtp_auth_failed"] == 0 and b.stats["srtp"] == SUITES[1]
    finally:
        await a.close()
        await b.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_rtcp_in_flight_under_the_old_key_during_a_rekey_is_accepted() -> None:
    """An RTCP report the peer protected before it switched keys is in flight like its RTP: not an auth failure
    (under load a report fell into the rekey window of the test above and was counted as one)."""
    ports = allocator()
    a = await RtpStream.open(HOST, ports, rtcp_interval=0.1)
    b = await RtpStream.open(HOST, ports)
    try:
        a_keys, b_keys = keys(SUITES[0])
        a.apply_sdes(a_keys)
        b.apply_sdes(b_keys)
        a.set_remote(HOST, b.local_port)
        a.play(tone(440, 2.0))
        await wait_until(lambda: b.stats["rtcp_received"] >= 1)
        b.apply_sdes(keys(SUITES[1])[1])  # B rekeyed; A still protects RTP and RTCP under the old key
        reports = b.stats["rtcp_received"]
        await wait_until(lambda: b.stats["rtcp_received"] >= reports + 3)
        assert b.stats["srtp_auth_failed"] == 0
    finally:
        await a.close()
        await b.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_srtp_offer_declined_by_a_plain_answer_receives_plain_rtp() -> None:
    ports = allocator()
    a = await RtpStream.open(HOST, ports)
    b = await RtpStream.open(HOST, ports)
    try:
        b.expect_srtp()  # our offer had a=crypto; until the answer nothing is accepted
        a.set_remote(HOST, b.local_port)
        a.play(tone(440, 0.2))
        await wait_until(lambda: b.stats["srtp_no_key"] >= 3)
        assert b.stats["packets_received"] == 0
        b.apply_sdes(None)  # the answer was plain RTP/AVP: plain media from now on
        a.play(tone(440, 0.4))
        await wait_until(lambda: b.stats["packets_received"] >= 5)
        assert b.stats["srtp"] is None
    finally:
        await a.close()
        await b.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_reset_peer_drops_the_first_peers_keys_and_source_and_the_next_answer_keys_afresh() -> None:
    """An outbound leg's early media came from one trunk proxy (SRTP keyed by its 183) and the call failed over to
    the next: after reset_peer the old key and source are gone (not kept as a rekey's previous key) and only
    the second peer's media, under its own key, is received and latched."""
    ports = allocator()
    first = await RtpStream.open(HOST, ports)
    second = await RtpStream.open(HOST, ports)
    b = await RtpStream.open(HOST, ports)
    try:
        first_keys, b_first = keys(SUITES[0])
        first.apply_sdes(first_keys)
        b.apply_sdes(b_first)
        b.set_remote(HOST, first.local_port)
        b.detect_inband_dtmf()  # the 183 offered no telephone-event
        first.set_remote(HOST, b.local_port)
        first.play(tone(440, 2.0))
        await wait_until(lambda: b.stats["packets_received"] >= 5)
        assert b.stats["latched"] == (HOST, first.local_port)

        b.reset_peer(srtp_expected=True)
        assert b.remote is None and b.stats["srtp"] is None and not b.inband_dtmf
        second_keys, b_second = keys(SUITES[1])
        second.apply_sdes(second_keys)
        b.apply_sdes(b_second)
        assert b.stats["srtp_rekeys"] == 0  # keyed afresh: the first peer's key is not accepted as "previous"
        b.set_remote(HOST, second.local_port)
        received, refused = b.stats["packets_received"], b.stats["wrong_source"]
        second.set_remote(HOST, b.local_port)
        second.play(tone(880, 1.0))
        await wait_until(lambda: b.stats["packets_received"] >= received + 10)
        assert b.stats["latched"] == (HOST, second.local_port)
        assert b.stats["wrong_source"] > refused  # the first peer still streaming: dropped, never latched
    finally:
        for stream in (first, second, b):
            await stream.close()
