"""The benchmarks' scoring logic: call-rate headline, what a waiting caller heard, turn latency at the caller,
Mandarin numerals read both ways. Pure functions fed with real audio (the hold melody, broadband speech-like
sound) where the scoring reads audio."""

from __future__ import annotations

import numpy as np
import pytest

from bench.caller_scripts import Script
from bench.queue_listening import heard_in_queue
from bench.rtp_callers import FRAME, CallTrace, frame_levels
from bench.sip_call_rate import (
    RateResult,
    first_retransmitting,
    readme_figure,
    sustained_rate,
)
from bench.speech_engines import _edit_distance, _hanzi, _readings
from bench.turn_measure import measure_turns
from voicebot.calls.hold import generated_hold_music
from voicebot.rtp.g711 import ulaw_encode


def rate(rate_per_s: int, *, retrans: int = 0, failed: int = 0, offered: float | None = None) -> RateResult:
    calls = rate_per_s * 10
    counts = {"created": calls, "successful": calls - failed, "failed": failed, "retransmissions": retrans}
    return RateResult(rate=rate_per_s, offered=offered if offered is not None else float(rate_per_s), counts=counts,
                      p50_ms=1.0, p95_ms=float(rate_per_s) / 10, cpu_pct=10.0, sipp_cpu_pct=5.0, rss_mb=100.0,
                      late_ticks=0, ticks=100, max_lateness_ms=1.0, server_calls_ended=calls, errors="")


def test_call_rate_headline_stops_at_the_first_rate_with_retransmissions() -> None:
    results = [rate(50), rate(100), rate(200, retrans=3), rate(300)]  # 300 clean again: not sustained
    assert sustained_rate(results).rate == 100
    assert first_retransmitting(results).rate == 200
    figure = readme_figure(results)
    assert figure.startswith("**100/s**, p95 setup 10 ms")
    assert "first retransmissions at 200/s (3" in figure


def test_call_rate_headline_needs_the_rate_really_offered_and_no_failures() -> None:
    assert sustained_rate([rate(50), rate(100, offered=80.0)]).rate == 50
    assert sustained_rate([rate(50, failed=1)]) is None
    assert "first failures at 50/s" in readme_figure([rate(50, failed=1)])
    assert readme_figure([rate(50), rate(100)]).startswith("**≥ 100/s**")


def received(pcm: np.ndarray, start: float = 100.0, late: dict[int, float] | None = None) -> CallTrace:
    """A trace whose callers received `pcm` as 20 ms packets, on time except the `late` ones (index -> delay s)."""
    frames = len(pcm) // FRAME
    at = start + np.arange(frames) * 0.02
    for index, delay in (late or {}).items():
        at[index:] += delay
    rms, high = frame_levels(ulaw_encode(pcm[:frames * FRAME]))
    return CallTrace(answered_at=start - 1, ended_by="caller", received_at=at, received_seq=np.arange(frames),
                     received_rms=rms, received_high_band=high)


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Broadband bursts (syllables) with short pauses: energy well above 1 kHz, unlike the hold melody."""
    rng = np.random.default_rng(seed)
    samples = int(seconds * 8000)
    envelope = (np.sin(np.arange(samples) / 8000 * 2 * np.pi * 4) > -0.3).astype(float)
    return (rng.normal(0, 3000, samples) * envelope).astype(np.int16)


def test_waiting_caller_hears_two_announcements_between_hold_music_and_one_gap() -> None:
    hold = np.asarray(generated_hold_music(seconds=16.0))
    pcm = np.concatenate([hold[:8000 * 4], speech_like(2.5, 1), hold[:8000 * 3], speech_like(3.0, 2),
                          hold[:8000 * 4]])
    heard = heard_in_queue(received(pcm, late={300: 0.2}))
    assert heard is not None
    assert heard.announcements == 2
    assert heard.gaps == 1 and heard.late_packets == 1
    assert heard.longest_gap_ms == pytest.approx(220, abs=1)
    assert heard.silences == 0


def test_caller_who_never_heard_hold_music_is_not_scored_as_waiting() -> None:
    assert heard_in_queue(received(speech_like(3.0, 3))) is None


def test_hold_music_that_stops_is_a_silence() -> None:
    hold = np.asarray(generated_hold_music(seconds=16.0))
    pcm = np.concatenate([hold[:8000 * 3], np.zeros(8000 * 2, np.int16), hold[:8000 * 3]])
    heard = heard_in_queue(received(pcm))
    assert heard is not None and heard.silences == 1
    assert heard.longest_silence_s == pytest.approx(2.0, abs=0.1)


def test_turn_latency_runs_from_last_voiced_frame_sent_to_first_reply_received() -> None:
    # the caller sends 10 s of script; turns end at 1.0 s and 5.0 s, the second turn starts at 3.0 s
    sent = 50.0 + np.arange(500) * 0.02
    script = Script(audio=np.zeros(500 * FRAME, np.int16), turn_starts=[0, 3 * 8000], turn_ends=[8000, 5 * 8000],
                    labels=["first", "second"], full_endpoint=[False, True])
    reply = np.zeros(500, bool)
    reply[90:120] = True  # the bot answers the first turn ~0.8 s after it (received at 51.8 s)
    trace = CallTrace(answered_at=50.0, ended_by="caller", frame_sent_at=sent, received_at=50.0 + np.arange(500) * 0.02,
                      received_seq=np.arange(500), received_rms=np.where(reply, 3000.0, 10.0).astype(np.float32),
                      received_high_band=np.zeros(500, np.float32))
    first, second = measure_turns(trace, script)
    assert first.latency_ms == pytest.approx(820, abs=1)  # last voiced frame (index 49) sent at 50.98 s
    assert second.latency_ms is None  # no reply to the second turn: a failure
    assert second.full_endpoint


def test_reply_that_comes_after_the_next_turn_began_is_a_failure() -> None:
    sent = 50.0 + np.arange(500) * 0.02
    script = Script(audio=np.zeros(500 * FRAME, np.int16), turn_starts=[0, 2 * 8000], turn_ends=[8000, 3 * 8000],
                    labels=["first", "second"], full_endpoint=[False, False])
    rms = np.full(500, 10.0, np.float32)
    rms[120:140] = 3000.0  # arrives at 52.4 s, after the second turn began at 52.0 s
    trace = CallTrace(answered_at=50.0, ended_by="caller", frame_sent_at=sent, received_at=sent.copy(),
                      received_seq=np.arange(500), received_rms=rms, received_high_band=np.zeros(500, np.float32))
    first, second = measure_turns(trace, script)
    assert first.latency_ms is None and first.late_reply_ms == pytest.approx(1420, abs=1)
    assert second.latency_ms is None  # that spurt came while the caller was still speaking its second turn


def test_numeral_scored_in_the_reading_closer_to_the_reference() -> None:
    reference = _hanzi("您尾号六二八一的银行卡")
    assert min(_edit_distance(reference, reading) for reading in _readings("您尾号6281的银行卡")) == 0
    assert min(_edit_distance(_hanzi("余额一千二百八十元"), r) for r in _readings("余额1280元")) == 0
    assert _hanzi("掛失") == "挂失"
