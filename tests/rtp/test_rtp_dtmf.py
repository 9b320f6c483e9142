"""RFC 4733 DTMF: receiver reports each digit once under retransmission and loss; sender sequence."""

import pytest

from voicebot.rtp.dtmf import DtmfReceiver, DtmfSender, TelephoneEvent
from voicebot.rtp.packet import RtpPacket


def event_packets(digit_code, timestamp, sequence, duration_steps=4, step=160, ends=3, marker=True):
    """The packets a sender emits for one event (start, continuations, 3 end packets)."""
    packets = []
    for n in range(1, duration_steps + 1):
        payload = TelephoneEvent(digit_code, False, 10, n * step).serialize()
        packets.append(RtpPacket(101, sequence, timestamp, 7, payload, marker and n == 1))
        sequence += 1
    for _ in range(ends):
        payload = TelephoneEvent(digit_code, True, 10, duration_steps * step).serialize()
        packets.append(RtpPacket(101, sequence, timestamp, 7, payload))
        sequence += 1
    return packets


def digits_from(packets, receiver=None):
    receiver = receiver or DtmfReceiver()
    return "".join(d for d in (receiver.feed(p) for p in packets) if d)


def test_each_digit_once_despite_retransmitted_end_packets():
    packets = event_packets(1, 1000, 1) + event_packets(2, 3000, 20) + event_packets(1, 5000, 40)
    assert digits_from(packets) == "121"


def test_all_sixteen_digits():
    packets = []
    for code in range(16):
        packets += event_packets(code, 10000 + code * 2000, code * 10)
    assert digits_from(packets) == "0123456789*#ABCD"


def test_same_digit_twice_without_end_packets():
    first = event_packets(5, 1000, 1, ends=0)
    second = event_packets(5, 2000, 10, ends=0)
    assert digits_from(first + second) == "55"


def test_lost_start_and_continuations_still_reports_from_end_packet():
    packets = event_packets(9, 1000, 1)[-2:]  # only two of the end packets arrive
    assert digits_from(packets) == "9"


def test_lost_end_packets_then_new_digit_without_marker():
    first = event_packets(3, 1000, 1, ends=0)
    second = event_packets(3, 4000, 10)[1:]  # its marked start packet is lost too
    assert digits_from(first + second) == "33"


def test_reordered_straggler_of_previous_event_is_ignored():
    first = event_packets(4, 1000, 1)
    second = event_packets(6, 3000, 10)
    packets = first[:-1] + second[:2] + [first[-1]] + second[2:]
    assert digits_from(packets) == "46"


def test_long_event_continuation_segment_is_not_a_new_digit():
    first = event_packets(8, 1000, 1, duration_steps=4, ends=0)  # duration 640 so far
    continuation = event_packets(8, 1000 + 640, 5, marker=False)
    assert digits_from(first + continuation) == "8"


def test_flash_and_malformed_are_ignored():
    receiver = DtmfReceiver()
    assert digits_from(event_packets(16, 1000, 1), receiver) == ""
    assert receiver.feed(RtpPacket(101, 50, 9000, 7, b"\x01\x00")) is None
    assert receiver.ignored == 1 and receiver.malformed == 1
    assert digits_from(event_packets(0, 9000, 60), receiver) == "0"


def test_sender_sequence():
    packets = DtmfSender().packets("#", duration_ms=100, volume=10)
    assert len(packets) == 5 + 3
    assert [p.marker for p in packets] == [True] + [False] * 7
    events = [TelephoneEvent.parse(p.payload) for p in packets]
    assert {e.event for e in events} == {11} and {e.volume for e in events} == {10}
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800, 800]
    assert [e.end for e in events] == [False] * 5 + [True] * 3


def test_sender_rounds_duration_up_to_whole_packets_and_round_trips():
    packets = DtmfSender().packets("d", duration_ms=50)
    assert TelephoneEvent.parse(packets[-1].payload).duration == 480
    rtp = [RtpPacket(101, n, 4242, 1, p.payload, p.marker) for n, p in enumerate(packets)]
    assert digits_from(rtp) == "D"


@pytest.mark.parametrize("args,message", [
    (("x",), "not a DTMF digit"), (("12",), "not a DTMF digit"), (("1", 100, 64), "volume"),
    (("1", 0), "positive"), (("1", 9000), "exceeds"),
])
def test_sender_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        DtmfSender().packets(*args)
