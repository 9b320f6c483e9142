"""RTP packet parse/serialise: round trips, every malformed case, RTP/RTCP demux."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebot.rtp.packet import RtpError, RtpExtension, RtpPacket, is_rtcp


def header(first=0x80, second=0, seq=1, ts=2, ssrc=3):
    return struct.pack("!BBHII", first, second, seq, ts, ssrc)


def test_parse_plain_packet():
    packet = RtpPacket.parse(header(0x80, 0x80 | 8, 65535, 0xFFFFFFFF, 0xDEADBEEF) + b"\x01\x02")
    assert (packet.payload_type, packet.marker, packet.sequence, packet.timestamp, packet.ssrc) == (
        8, True, 65535, 0xFFFFFFFF, 0xDEADBEEF)
    assert packet.payload == b"\x01\x02" and packet.csrcs == () and packet.extension is None


def test_parse_csrcs_extension_and_padding():
    data = (header(0x80 | 0x20 | 0x10 | 2, 101) + struct.pack("!II", 7, 8)
            + struct.pack("!HH", 0xBEDE, 1) + b"abcd" + b"payload" + b"\x00\x00\x03")
    packet = RtpPacket.parse(data)
    assert packet.csrcs == (7, 8)
    assert packet.extension == RtpExtension(0xBEDE, b"abcd")
    assert packet.payload == b"payload"
    assert packet.payload_type == 101 and not packet.marker


def test_serialize_round_trip_with_all_fields():
    packet = RtpPacket(96, 40000, 123456789, 42, b"xyz", True, (1, 2, 3), RtpExtension(0x1000, b"12345678"))
    assert RtpPacket.parse(packet.serialize()) == packet


@settings(max_examples=200, deadline=None)
@given(
    payload_type=st.integers(0, 127), sequence=st.integers(0, 0xFFFF), timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF), payload=st.binary(max_size=200), marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none() | st.builds(RtpExtension, st.integers(0, 0xFFFF), st.binary(max_size=40).map(
        lambda b: b[: len(b) - len(b) % 4])),
)
def test_round_trip_property(payload_type, sequence, timestamp, ssrc, payload, marker, csrcs, extension):
    packet = RtpPacket(payload_type, sequence, timestamp, ssrc, payload, marker, csrcs, extension)
    assert RtpPacket.parse(packet.serialize()) == packet


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_parse_raises_only_rtp_error(data):
    try:
        packet = RtpPacket.parse(data)
    except RtpError:
        return
    assert len(data) >= 12 and data[0] >> 6 == 2
    assert len(packet.payload) <= len(data) - 12


@pytest.mark.parametrize("data,message", [
    (b"", "truncated: 0 bytes"),
    (header()[:11], "truncated: 11 bytes"),
    (header(first=0x40), "version 1"),
    (header(first=0xC0), "version 3"),
    (header(first=0x82) + b"\x00\x00\x00\x01", "CSRC list truncated"),
    (header(first=0x90), "no extension header"),
    (header(first=0x90) + struct.pack("!HH", 0xBEDE, 2) + b"abcd", "runs past the packet end"),
    (header(first=0xA0) + b"ab\x00", "padding length is 0"),
    (header(first=0xA0) + b"ab\x04", "padding length 4 exceeds"),
    (header(first=0xA0), "padding length 3 exceeds"),  # last header byte (SSRC=3) read as pad count
])
def test_malformed_packets_raise_specific_errors(data, message):
    with pytest.raises(RtpError, match=message):
        RtpPacket.parse(data)


@pytest.mark.parametrize("packet,message", [
    (RtpPacket(128, 0, 0, 0), "payload type 128"),
    (RtpPacket(0, 0, 0, 0, csrcs=tuple(range(16))), "at most 15 CSRCs"),
    (RtpPacket(0, 0, 0, 0, extension=RtpExtension(1, b"abc")), "multiple of 4"),
])
def test_serialize_rejects_out_of_range_fields(packet, message):
    with pytest.raises(ValueError, match=message):
        packet.serialize()


def test_is_rtcp_demux():
    assert is_rtcp(struct.pack("!BBH", 0x80, 200, 6) + bytes(24))
    assert is_rtcp(struct.pack("!BBH", 0x81, 201, 7) + bytes(28))
    assert not is_rtcp(header(0x80, 0) + bytes(160))  # PCMU
    assert not is_rtcp(header(0x80, 0x80 | 101) + bytes(4))  # telephone-event start packet (0xE5)
    assert not is_rtcp(header(0x80, 0x80 | 0) + bytes(160))  # marked PCMU
    assert not is_rtcp(struct.pack("!BBH", 0x80, 205, 1) + bytes(4))  # RTPFB is outside the heuristic
    assert not is_rtcp(b"\x80\xc8")  # too short
