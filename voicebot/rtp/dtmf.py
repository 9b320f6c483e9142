"""RFC 4733 telephone-event (DTMF) payloads: a receiver that reports each digit once, and a sender.

Payload layout (4 bytes): event (8 bits) | E end bit, R reserved, volume (6 bits) | duration (16 bits,
in timestamp units since the event began). Every packet of one event carries the same RTP timestamp.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

from .packet import RtpPacket

EVENT_CODES = "0123456789*#ABCD"  # events 0..15
FLASH_EVENT = 16
_PAYLOAD = struct.Struct("!BBH")
_END_BIT = 0x80
_RECENT_EVENTS = 8


class DtmfPacket(NamedTuple):
    """One telephone-event payload and whether its RTP packet carries the marker bit."""

    payload: bytes
    marker: bool


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < _PAYLOAD.size:
            raise ValueError(f"telephone-event payload needs 4 bytes, got {len(payload)}")
        event, flags, duration = _PAYLOAD.unpack_from(payload)
        return cls(event, bool(flags & _END_BIT), flags & 0x3F, duration)

    def serialize(self) -> bytes:
        return _PAYLOAD.pack(self.event, (_END_BIT if self.end else 0) | (self.volume & 0x3F), self.duration)


class DtmfReceiver:
    """Turns a stream of telephone-event packets into digits, each reported exactly once.

    An event is identified by its RTP timestamp, so the digit is reported on the first packet seen
    for a new timestamp, whether that is the marked start packet, a continuation (start lost) or
    an end packet (everything else lost). Retransmitted end packets and stragglers of recent events
    are ignored. A continuation segment of a very long event (RFC 4733 2.5.1.3: new timestamp =
    old timestamp + old duration, no marker) is not reported again.
    """

    def __init__(self) -> None:
        self._recent: deque[int] = deque(maxlen=_RECENT_EVENTS)
        self._current: tuple[int, int, int, bool] | None = None  # timestamp, event, duration, ended
        self.malformed = 0
        self.ignored = 0

    def feed(self, packet: RtpPacket) -> str | None:
        """Process one telephone-event packet; return the digit when a new event starts."""
        try:
            event = TelephoneEvent.parse(packet.payload)
        except ValueError:
            self.malformed += 1
            return None
        timestamp = packet.timestamp
        current = self._current
        if current is not None and current[0] == timestamp:
            self._current = (timestamp, current[1], max(current[2], event.duration), current[3] or event.end)
            return None
        if timestamp in self._recent:
            return None  # straggler of an earlier event
        self._recent.append(timestamp)
        continuation = (
            current is not None
            and not packet.marker
            and not current[3]
            and current[1] == event.event
            and (current[0] + current[2]) & 0xFFFFFFFF == timestamp
        )
        self._current = (timestamp, event.event, event.duration, event.end)
        if continuation:
            return None
        if event.event >= len(EVENT_CODES):
            self.ignored += 1  # flash (16) and non-DTMF events
            return None
        return EVENT_CODES[event.event]


class DtmfSender:
    """Builds the payload sequence of one digit, to be sent one per 20 ms tick with one timestamp."""

    def __init__(self, sample_rate: int = 8000, packet_ms: int = 20) -> None:
        self.samples_per_packet = sample_rate * packet_ms // 1000
        self.packet_ms = packet_ms

    def packets(self, digit: str, duration_ms: int = 100, volume: int = 10) -> list[DtmfPacket]:
        """Start packet (marker), continuations every packet_ms, then the end packet three times."""
        if len(digit) != 1 or digit.upper() not in EVENT_CODES:
            raise ValueError(f"not a DTMF digit: {digit!r}; use one of {EVENT_CODES}")
        if not 0 <= volume <= 63:
            raise ValueError(f"DTMF volume is -dBm0 in 0..63, got {volume}")
        if duration_ms <= 0:
            raise ValueError(f"DTMF duration must be positive, got {duration_ms} ms")
        event = EVENT_CODES.index(digit.upper())
        count = -(-duration_ms // self.packet_ms)
        total = count * self.samples_per_packet
        if total > 0xFFFF:
            raise ValueError(f"DTMF duration {duration_ms} ms exceeds one 16-bit duration field")
        progress = [
            DtmfPacket(TelephoneEvent(event, False, volume, n * self.samples_per_packet).serialize(), n == 1)
            for n in range(1, count + 1)
        ]
        end = TelephoneEvent(event, True, volume, total).serialize()
        return progress + [DtmfPacket(end, False)] * 3
