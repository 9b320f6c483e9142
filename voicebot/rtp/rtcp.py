"""RTCP packets (RFC 3550 section 6): SR, RR, SDES CNAME and BYE; compound parse and build."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Union

SR, RR, SDES, BYE, APP = 200, 201, 202, 203, 204
_HEADER = struct.Struct("!BBH")  # V/P/count, packet type, length in 32-bit words minus one
_SENDER_INFO = struct.Struct("!IIIII")  # SSRC, NTP seconds, NTP fraction, RTP timestamp, packets, (octets)
_REPORT_BLOCK = struct.Struct("!IIIIII")
_SDES_CNAME = 1


class RtcpError(ValueError):
    """A datagram is not well-formed RTCP."""


@dataclass(frozen=True, slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int  # 0..255, fraction of packets lost since the last report, times 256
    cumulative_lost: int  # signed 24-bit
    highest_sequence: int  # extended highest sequence number received
    jitter: int  # interarrival jitter, timestamp units
    last_sr: int = 0  # middle 32 bits of the last SR's NTP timestamp
    delay_since_last_sr: int = 0  # units of 1/65536 s

    def serialize(self) -> bytes:
        if not 0 <= self.fraction_lost <= 255:
            raise ValueError(f"fraction lost {self.fraction_lost} outside 0..255")
        lost = max(-0x800000, min(0x7FFFFF, self.cumulative_lost)) & 0xFFFFFF
        return _REPORT_BLOCK.pack(self.ssrc, (self.fraction_lost << 24) | lost, self.highest_sequence & 0xFFFFFFFF,
                                  self.jitter & 0xFFFFFFFF, self.last_sr, self.delay_since_last_sr)

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, lost_word, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int  # 64-bit NTP format: seconds << 32 | fraction
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def serialize(self) -> bytes:
        body = struct.pack("!IIIIII", self.ssrc, (self.ntp_timestamp >> 32) & 0xFFFFFFFF,
                           self.ntp_timestamp & 0xFFFFFFFF, self.rtp_timestamp & 0xFFFFFFFF,
                           self.packet_count & 0xFFFFFFFF, self.octet_count & 0xFFFFFFFF)
        return _packet(SR, len(self.reports), body + b"".join(r.serialize() for r in self.reports))


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def serialize(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(r.serialize() for r in self.reports)
        return _packet(RR, len(self.reports), body)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES with one chunk carrying CNAME (other items are skipped on parse)."""

    ssrc: int
    cname: str

    def serialize(self) -> bytes:
        text = self.cname.encode()
        if len(text) > 255:
            raise ValueError(f"CNAME is {len(text)} bytes, at most 255 allowed")
        chunk = struct.pack("!IBB", self.ssrc, _SDES_CNAME, len(text)) + text + b"\x00"
        chunk += b"\x00" * (-len(chunk) % 4)
        return _packet(SDES, 1, chunk)


@dataclass(frozen=True, slots=True)
class Bye:
    ssrcs: tuple[int, ...]
    reason: str = ""

    def serialize(self) -> bytes:
        if len(self.ssrcs) > 31:
            raise ValueError(f"BYE carries at most 31 SSRCs, got {len(self.ssrcs)}")
        body = struct.pack(f"!{len(self.ssrcs)}I", *self.ssrcs)
        if self.reason:
            text = self.reason.encode()[:255]
            body += bytes([len(text)]) + text
            body += b"\x00" * (-len(body) % 4)
        return _packet(BYE, len(self.ssrcs), body)


RtcpPacket = Union[SenderReport, ReceiverReport, SourceDescription, Bye]


def _packet(packet_type: int, count: int, body: bytes) -> bytes:
    if len(body) % 4:
        raise ValueError("RTCP body must be a multiple of 4 bytes")
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def build_compound(*packets: RtcpPacket) -> bytes:
    """Concatenate packets into one compound RTCP datagram (first should be SR or RR)."""
    return b"".join(p.serialize() for p in packets)


def parse_compound(data: bytes | bytearray | memoryview) -> list[RtcpPacket]:
    """Parse a (possibly compound) RTCP datagram. Unknown packet types (APP, XR, feedback...) are
    skipped; structural errors raise RtcpError."""
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise RtcpError(f"RTCP datagram truncated: {len(data)} bytes")
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            raise RtcpError(f"RTCP header truncated at offset {offset}")
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != 2:
            raise RtcpError(f"RTCP version {first >> 6} at offset {offset}, expected 2")
        end = offset + 4 + 4 * words
        if end > len(data):
            raise RtcpError(f"RTCP packet type {packet_type} length {words} runs past the datagram end")
        body_end = end
        if first & 0x20:
            padding = data[end - 1]
            if padding == 0 or padding > end - offset - 4:
                raise RtcpError(f"RTCP padding length {padding} invalid at offset {offset}")
            body_end = end - padding
        body = data[offset + 4:body_end]
        count = first & 0x1F
        parsed = _parse_one(packet_type, count, body)
        if parsed is not None:
            packets.append(parsed)
        offset = end
    return packets


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket | None:
    if packet_type == SR:
        need = 24 + 24 * count
        if len(body) < need:
            raise RtcpError(f"RTCP SR with {count} report blocks needs {need} bytes, has {len(body)}")
        ssrc, ntp_hi, ntp_lo, rtp_ts, packets, octets = struct.unpack_from("!IIIIII", body)
        blocks = tuple(ReportBlock.parse(body, 24 + 24 * i) for i in range(count))
        return SenderReport(ssrc, (ntp_hi << 32) | ntp_lo, rtp_ts, packets, octets, blocks)
    if packet_type == RR:
        need = 4 + 24 * count
        if len(body) < need:
            raise RtcpError(f"RTCP RR with {count} report blocks needs {need} bytes, has {len(body)}")
        (ssrc,) = struct.unpack_from("!I", body)
        return ReceiverReport(ssrc, tuple(ReportBlock.parse(body, 4 + 24 * i) for i in range(count)))
    if packet_type == SDES:
        return _parse_sdes(count, body)
    if packet_type == BYE:
        if len(body) < 4 * count:
            raise RtcpError(f"RTCP BYE with {count} SSRCs needs {4 * count} bytes, has {len(body)}")
        ssrcs = struct.unpack_from(f"!{count}I", body)
        reason = ""
        rest = body[4 * count:]
        if rest:
            if 1 + rest[0] > len(rest):
                raise RtcpError("RTCP BYE reason length runs past the packet end")
            reason = rest[1:1 + rest[0]].decode(errors="replace")
        return Bye(tuple(ssrcs), reason)
    return None


def _parse_sdes(count: int, body: bytes) -> SourceDescription | None:
    """Return the first chunk's CNAME (None if no chunk has one)."""
    offset = 0
    found: SourceDescription | None = None
    for _ in range(count):
        if offset + 4 > len(body):
            raise RtcpError("RTCP SDES chunk truncated")
        (ssrc,) = struct.unpack_from("!I", body, offset)
        offset += 4
        while True:
            if offset >= len(body):
                raise RtcpError("RTCP SDES item list not terminated")
            item_type = body[offset]
            if item_type == 0:
                offset += 1
                offset += -offset % 4
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise RtcpError("RTCP SDES item runs past the packet end")
            length = body[offset + 1]
            if item_type == _SDES_CNAME and found is None:
                found = SourceDescription(ssrc, body[offset + 2:offset + 2 + length].decode(errors="replace"))
            offset += 2 + length
    return found
