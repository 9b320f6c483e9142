"""Jitter buffer: reordering, 16-bit wraparound, loss concealment, duplicates, late packets, SSRC change."""

import numpy as np
import pytest

from voicebot.rtp.jitter import JitterBuffer

SSRC = 0x1234


def frame(value: int) -> np.ndarray:
    return np.full(160, value, dtype=np.int16)


def values(frames):
    """First sample of each frame (None when nothing was played)."""
    return [None if f is None else int(f[0]) for f in frames]


def run(buffer: JitterBuffer, arrivals_per_tick, ssrc=SSRC):
    """Each tick: push that tick's (sequence, value) arrivals, then pop one frame."""
    out = []
    for arrivals in arrivals_per_tick:
        for sequence, value in arrivals:
            buffer.push(sequence, frame(value), ssrc)
        out.append(buffer.pop())
    return values(out)


def test_waits_for_depth_then_plays_in_order():
    buffer = JitterBuffer(depth=3)
    out = run(buffer, [[(10, 100)], [(11, 110)], [(12, 120)], [(13, 130)], [], [], []])
    assert out == [None, None, 100, 110, 120, 130, 65]  # then the last frame once at half level
    assert buffer.stats.lost == 0 and buffer.stats.received == 4


def test_reorders_within_depth():
    buffer = JitterBuffer(depth=3)
    out = run(buffer, [[(1, 1)], [(3, 3)], [(2, 2)], [(5, 5)], [(4, 4)], [(6, 6)], [(7, 7)]])
    assert out == [None, None, 1, 2, 3, 4, 5]
    assert buffer.stats.reordered == 2 and buffer.stats.lost == 0 and buffer.stats.late == 0


def test_sequence_wraparound():
    buffer = JitterBuffer(depth=2)
    seqs = [65533, 65535, 65534, 0, 1, 2]
    out = run(buffer, [[(s, i)] for i, s in enumerate(seqs)] + [[]])
    assert out == [None, 0, 2, 1, 3, 4, 5]
    assert buffer.stats.lost == 0 and buffer.stats.reordered == 1


def test_loss_is_concealed_by_attenuated_repeat_then_silence():
    buffer = JitterBuffer(depth=1)
    ticks = [[(1, 1000)], [(2, 2000)], [], [], [], [(6, 6000)], [(7, 7000)], [(8, 8000)]]
    # 3, 4, 5 never arrive: 2000 repeated at half level once, then silence while the buffer is dry;
    # when 6 arrives the gap is counted lost and playout resumes.
    out = run(buffer, ticks)
    assert out == [1000, 2000, 1000, 0, 0, 6000, 7000, 8000]
    assert buffer.stats.lost == 3
    assert buffer.stats.concealed == 3


def test_loss_in_the_middle_of_a_steady_stream():
    buffer = JitterBuffer(depth=3)
    ticks = [[(s, s)] for s in (1, 2, 3, 4, 6, 7, 8, 9)] + [[]]
    out = run(buffer, ticks)
    assert out == [None, None, 1, 2, 3, 4, 2, 6, 7]
    assert buffer.stats.lost == 1 and buffer.stats.late == 0


def test_too_late_packet_is_dropped_and_counted():
    buffer = JitterBuffer(depth=2)
    ticks = [[(1, 1)], [(2, 2)], [(4, 4)], [(5, 5)], [(3, 3)], []]
    out = run(buffer, ticks)
    assert out == [None, 1, 2, 1, 4, 5]
    assert buffer.stats.lost == 1 and buffer.stats.late == 1


def test_duplicates_are_dropped_whether_buffered_or_played():
    buffer = JitterBuffer(depth=2)
    out = run(buffer, [[(1, 1)], [(1, 1), (2, 2)], [(1, 1)], [(3, 3)], []])
    assert out == [None, 1, 2, 3, 1]
    assert buffer.stats.duplicate == 2 and buffer.stats.late == 0


def test_ssrc_change_resets_the_buffer():
    buffer = JitterBuffer(depth=2)
    out = run(buffer, [[(100, 1)], [(101, 2)]])
    out += run(buffer, [[(5000, 50)], [(5001, 51)], [(5002, 52)]], ssrc=0x9999)
    assert out == [None, 1, None, 50, 51]
    assert buffer.stats.resets == 1 and buffer.stats.lost == 0 and buffer.stats.late == 0


def test_sequence_restart_needs_two_consecutive_packets():
    buffer = JitterBuffer(depth=1)
    out = run(buffer, [[(10, 1)], [(11, 2)], [(40000, 9)], [(12, 3)], [(30000, 7)], [(30001, 8)], [(30002, 9)]])
    assert out == [1, 2, 1, 3, 1, 8, 9]
    assert buffer.stats.resets == 1 and buffer.stats.late == 2


def test_overflow_is_trimmed_to_depth():
    buffer = JitterBuffer(depth=2, max_depth=4)
    for sequence in range(1, 3):
        buffer.push(sequence, frame(sequence), SSRC)
    assert values([buffer.pop()]) == [1]
    for sequence in range(3, 10):  # a burst after a stall
        buffer.push(sequence, frame(sequence), SSRC)
    assert values([buffer.pop(), buffer.pop()]) == [8, 9]
    assert buffer.stats.overflow == 6 and buffer.stats.lost == 0


def test_concealed_frames_are_not_writable_or_are_copies():
    buffer = JitterBuffer(depth=1)
    buffer.push(1, frame(100), SSRC)
    played = buffer.pop()
    repeat, silence = buffer.pop(), buffer.pop()
    assert repeat is not played and int(repeat[0]) == 50
    with pytest.raises(ValueError):
        silence[0] = 1


def test_invalid_configuration():
    with pytest.raises(ValueError, match="depth must be >= 1"):
        JitterBuffer(depth=0)
    with pytest.raises(ValueError, match="max_depth 2 is below depth 3"):
        JitterBuffer(depth=3, max_depth=2)
