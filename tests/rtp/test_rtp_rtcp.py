"""RTCP SR/RR/SDES/BYE round trips, compound tolerance, malformed input; RFC 3550 reception statistics."""

import struct

import pytest

from voicebot.rtp.reception import ReceptionStats
from voicebot.rtp.rtcp import (Bye, ReceiverReport, ReportBlock, RtcpError, SenderReport, SourceDescription,
                               build_compound, parse_compound)

BLOCK = ReportBlock(ssrc=0xCAFE, fraction_lost=64, cumulative_lost=-5, highest_sequence=70000, jitter=123,
                    last_sr=0x12345678, delay_since_last_sr=65536)


def test_sender_report_round_trip():
    report = SenderReport(0xAABBCCDD, (3900000000 << 32) | 0x80000000, 160000, 500, 80000, (BLOCK,))
    data = report.serialize()
    assert len(data) == 4 + 24 + 24 and data[1] == 200 and data[0] & 0x1F == 1
    assert parse_compound(data) == [report]


def test_compound_receiver_report_sdes_bye_round_trip():
    packets = [ReceiverReport(1, (BLOCK, ReportBlock(2, 0, 0, 10, 0))), SourceDescription(1, "bot@example"),
               Bye((1,), "hangup")]
    data = build_compound(*packets)
    assert len(data) % 4 == 0
    assert parse_compound(data) == packets


def test_cumulative_lost_is_clamped_to_24_bit_signed():
    block = ReportBlock(1, 0, 10_000_000, 0, 0)
    assert ReportBlock.parse(block.serialize(), 0).cumulative_lost == 0x7FFFFF


def test_unknown_packet_types_are_skipped():
    app = struct.pack("!BBH", 0x80, 204, 2) + b"name" + b"data"
    xr = struct.pack("!BBH", 0x80, 207, 1) + bytes(4)
    data = ReceiverReport(9).serialize() + app + xr + Bye((9,)).serialize()
    assert parse_compound(data) == [ReceiverReport(9), Bye((9,))]


def test_padding_is_honoured():
    body = struct.pack("!I", 5) + b"\x00\x00\x00\x04"
    data = struct.pack("!BBH", 0x80 | 0x20, 201, 2) + body
    assert parse_compound(data) == [ReceiverReport(5)]


def test_sdes_without_cname_and_with_other_items():
    chunk = struct.pack("!I", 3) + bytes([2, 3]) + b"bob" + bytes([1, 2]) + b"cn" + b"\x00\x00\x00"
    data = struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk
    assert parse_compound(data) == [SourceDescription(3, "cn")]


@pytest.mark.parametrize("data,message", [
    (b"\x80\xc8", "truncated"),
    (struct.pack("!BBH", 0x40, 201, 1) + bytes(4), "version 1"),
    (struct.pack("!BBH", 0x80, 201, 5) + bytes(4), "runs past"),
    (struct.pack("!BBH", 0x81, 201, 1) + bytes(4), "RR with 1 report blocks needs 28"),
    (struct.pack("!BBH", 0x80, 200, 1) + bytes(4), "SR with 0 report blocks needs 24"),
    (struct.pack("!BBH", 0x82, 203, 1) + bytes(4), "BYE with 2 SSRCs"),
    (struct.pack("!BBH", 0x81, 203, 2) + bytes(4) + b"\x09abc", "reason length"),
    (struct.pack("!BBH", 0x81, 202, 2) + bytes(4) + b"\x01\x09ab", "SDES item runs past"),
    (struct.pack("!BBH", 0x81, 202, 2) + bytes(4) + b"\x01\x02ab", "not terminated"),
    (struct.pack("!BBH", 0xA0, 201, 1) + bytes(4), "padding length 0"),
    (ReceiverReport(1).serialize() + b"\x80\xc9", "header truncated at offset 8"),
])
def test_malformed_rtcp_raises_rtcp_error(data, message):
    with pytest.raises(RtcpError, match=message):
        parse_compound(data)


def test_build_rejects_bad_fields():
    with pytest.raises(ValueError, match="fraction lost 256"):
        ReportBlock(1, 256, 0, 0, 0).serialize()
    with pytest.raises(ValueError, match="at most 255"):
        SourceDescription(1, "x" * 300).serialize()


def test_reception_counts_loss_across_wraparound():
    stats = ReceptionStats()
    stats.reset(77)
    sequences = [65530, 65531, 65533, 65535, 0, 1, 3]  # 65532, 65534, 2 missing
    for n, sequence in enumerate(sequences):
        stats.update(sequence, n * 160, n * 0.02)
    assert stats.expected == 10 and stats.received == 7 and stats.cumulative_lost == 3
    assert stats.extended_highest == 0x10000 + 3
    block = stats.report_block(now=1.0)
    assert block.ssrc == 77 and block.cumulative_lost == 3 and block.fraction_lost == (3 << 8) // 10
    assert stats.report_block(now=2.0).fraction_lost == 0  # nothing new lost in this interval


def test_interarrival_jitter_follows_rfc3550_estimator():
    steady = ReceptionStats()
    for n in range(50):
        steady.update(n, n * 160, n * 0.020)
    assert steady.jitter == pytest.approx(0.0, abs=1e-6)
    jittery = ReceptionStats()
    expected = 0.0
    previous_transit = None
    for n in range(50):
        arrival = n * 0.020 + (0.005 if n % 2 else 0.0)
        jittery.update(n, n * 160, arrival)
        transit = arrival * 8000 - n * 160
        if previous_transit is not None:
            expected += (abs(transit - previous_transit) - expected) / 16
        previous_transit = transit
    assert jittery.jitter == pytest.approx(expected)
    assert 30 < jittery.jitter <= 40  # converges towards the 5 ms (40 samples) alternation


def test_reception_ignores_timestamp_for_events_and_reports_lsr():
    stats = ReceptionStats()
    stats.update(1, 0, 0.0)
    stats.update(2, None, 0.5)  # telephone-event: no jitter contribution
    stats.update(3, 320, 0.04)
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)
    stats.on_sender_report(0x0001_2345_6789_0000, arrival=10.0)
    block = stats.report_block(now=10.5)
    assert block.last_sr == 0x23456789 and block.delay_since_last_sr == 32768
