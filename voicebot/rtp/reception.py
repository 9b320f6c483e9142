"""Receiver-side statistics for RTCP report blocks (RFC 3550 A.1, A.3, A.8). Pure logic."""

from __future__ import annotations

from .rtcp import ReportBlock


class ReceptionStats:
    """Tracks one source: extended highest sequence, loss, and the A.8 interarrival jitter."""

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self.ssrc: int | None = None
        self.received = 0
        self._base: int | None = None  # extended sequence number of the first packet
        self._max_seq = 0
        self._cycles = 0
        self._transit: float | None = None
        self.jitter = 0.0  # timestamp units
        self._expected_prior = 0
        self._received_prior = 0
        self._last_sr = 0
        self._last_sr_arrival: float | None = None

    def reset(self, ssrc: int) -> None:
        """Start over for a new source."""
        self.__init__(self.clock_rate)  # type: ignore[misc]  # mypy refuses __init__ on an instance; this is a reset
        self.ssrc = ssrc

    def update(self, sequence: int, timestamp: int | None, arrival: float) -> None:
        """Record one packet. Pass timestamp=None for packets whose timestamp does not advance
        with the media clock (telephone-event), so they do not distort jitter."""
        self.received += 1
        if self._base is None:
            self._base = sequence
            self._max_seq = sequence
        else:
            delta = (sequence - self._max_seq) & 0xFFFF
            if 0 < delta < 0x8000:
                if sequence < self._max_seq:
                    self._cycles += 0x10000
                self._max_seq = sequence
        if timestamp is not None:
            transit = arrival * self.clock_rate - timestamp
            if self._transit is not None:
                difference = abs(transit - self._transit)
                self.jitter += (difference - self.jitter) / 16.0
            self._transit = transit

    @property
    def extended_highest(self) -> int:
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        return 0 if self._base is None else self.extended_highest - self._base + 1

    @property
    def cumulative_lost(self) -> int:
        return self.expected - self.received

    def on_sender_report(self, ntp_timestamp: int, arrival: float) -> None:
        """Remember the last SR from this source, for LSR/DLSR in our reports."""
        self._last_sr = (ntp_timestamp >> 16) & 0xFFFFFFFF
        self._last_sr_arrival = arrival

    def report_block(self, now: float) -> ReportBlock:
        """Build a report block; the fraction lost covers the interval since the previous call."""
        expected_interval = self.expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior = self.expected
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0 if expected_interval <= 0 or lost_interval <= 0 else (lost_interval << 8) // expected_interval
        dlsr = 0 if self._last_sr_arrival is None else int((now - self._last_sr_arrival) * 65536) & 0xFFFFFFFF
        return ReportBlock(
            ssrc=self.ssrc or 0,
            fraction_lost=min(fraction, 255),
            cumulative_lost=self.cumulative_lost,
            highest_sequence=self.extended_highest,
            jitter=int(self.jitter),
            last_sr=self._last_sr,
            delay_since_last_sr=dlsr,
        )
