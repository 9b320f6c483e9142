"""RTP packet parse/serialise (RFC 3550 section 5.1) and RTP/RTCP demultiplexing."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

RTP_VERSION = 2
HEADER = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence, timestamp, SSRC
_EXTENSION_HEADER = struct.Struct("!HH")  # profile-defined id, length in 32-bit words
_RTCP_PAYLOAD_TYPES = range(200, 205)  # SR, RR, SDES, BYE, APP


class RtpError(ValueError):
    """A datagram is not a well-formed RTP packet."""


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """The RTP header extension: a 16-bit profile id and its data (a multiple of 4 bytes)."""

    profile: int
    data: bytes


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet. Padding is removed on parse and never added on serialise."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = field(default_factory=tuple)
    extension: RtpExtension | None = None

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> RtpPacket:
        """Parse one RTP datagram; raise RtpError naming what is wrong."""
        size = len(data)
        if size < HEADER.size:
            raise RtpError(f"RTP packet truncated: {size} bytes, the fixed header needs {HEADER.size}")
        first, second, sequence, timestamp, ssrc = HEADER.unpack_from(data)
        version = first >> 6
        if version != RTP_VERSION:
            raise RtpError(f"RTP version {version}, expected {RTP_VERSION}")
        offset = HEADER.size
        csrc_count = first & 0x0F
        csrcs: tuple[int, ...] = ()
        if csrc_count:
            end = offset + 4 * csrc_count
            if end > size:
                raise RtpError(f"RTP CSRC list truncated: CC={csrc_count} needs {end} bytes, packet has {size}")
            csrcs = struct.unpack_from(f"!{csrc_count}I", data, offset)
            offset = end
        extension = None
        if first & 0x10:
            if offset + _EXTENSION_HEADER.size > size:
                raise RtpError("RTP header extension truncated: X bit set but no extension header")
            profile, words = _EXTENSION_HEADER.unpack_from(data, offset)
            start = offset + _EXTENSION_HEADER.size
            end = start + 4 * words
            if end > size:
                raise RtpError(f"RTP header extension length {words} words runs past the packet end")
            extension = RtpExtension(profile, bytes(data[start:end]))
            offset = end
        end = size
        if first & 0x20:
            padding = data[size - 1]
            if padding == 0:
                raise RtpError("RTP padding bit set but padding length is 0")
            if padding > size - offset:
                raise RtpError(f"RTP padding length {padding} exceeds the {size - offset} bytes after the header")
            end = size - padding
        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(second & 0x80),
            csrcs=tuple(csrcs),
            extension=extension,
        )

    def serialize(self) -> bytes:
        """Encode to wire format; raise ValueError when a field is out of range."""
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"RTP payload type {self.payload_type} outside 0..127")
        if len(self.csrcs) > 15:
            raise ValueError(f"RTP allows at most 15 CSRCs, got {len(self.csrcs)}")
        first = (RTP_VERSION << 6) | len(self.csrcs)
        parts = []
        if self.extension is not None:
            first |= 0x10
            if len(self.extension.data) % 4:
                raise ValueError(f"RTP extension data must be a multiple of 4 bytes, got {len(self.extension.data)}")
        parts.append(HEADER.pack(first, (0x80 if self.marker else 0) | self.payload_type,
                                 self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc & 0xFFFFFFFF))
        if self.csrcs:
            parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        if self.extension is not None:
            parts.append(_EXTENSION_HEADER.pack(self.extension.profile, len(self.extension.data) // 4))
            parts.append(self.extension.data)
        parts.append(self.payload)
        return b"".join(parts)


def is_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """True when a datagram looks like RTCP (version 2, packet type 200-204), for RTP/RTCP demux."""
    return len(data) >= 8 and data[0] >> 6 == RTP_VERSION and data[1] in _RTCP_PAYLOAD_TYPES
