"""Endpointer state machine with synthetic voiced/unvoiced frame sequences (20 ms frames at 16 kHz)."""

import numpy as np
import pytest

from voicebot.speech.endpointer import (
    Endpointer,
    HangoverCancelled,
    HangoverStarted,
    ListenSettings,
    MaxUtterance,
    NoInput,
    SpeechEnded,
    SpeechStarted,
)

FRAME = 320  # 20 ms


def run(pattern: str, settings: ListenSettings, start_index: int = 0):
    """Feed one frame per character ('#' voiced, '.' silent); frame i holds the value i.

    Returns [(frame_index, event)].
    """
    endpointer = Endpointer(settings)
    out = []
    for i, symbol in enumerate(pattern, start=start_index):
        for event in endpointer.feed(np.full(FRAME, i, dtype=np.int16), symbol == "#"):
            out.append((i, event))
    return out, endpointer


def frame_ids(audio: np.ndarray) -> list[int]:
    return [int(v) for v in audio[::FRAME]]


SETTINGS = ListenSettings(
    no_input_timeout_ms=1000, end_silence_ms=200, max_utterance_ms=2000,
    min_speech_ms=100, hangover_start_ms=80, pre_roll_ms=60, onset_gap_ms=40,
)


def test_utterance_produces_start_hangover_and_end_with_pre_roll():
    events, endpointer = run("." * 10 + "#" * 10 + "." * 12, SETTINGS)
    kinds = [(i, type(e)) for i, e in events]
    assert kinds == [(14, SpeechStarted), (23, HangoverStarted), (29, SpeechEnded)]
    started, hangover, ended = (e for _, e in events)
    assert started.at_ms == pytest.approx(200.0)
    # 60 ms pre-roll (frames 7-9), speech 10-19, 80 ms of trailing silence (20-23)
    assert frame_ids(ended.audio) == list(range(7, 24))
    assert ended.revision == hangover.revision == 1
    assert np.array_equal(ended.audio, hangover.audio)
    assert ended.speech_ms == pytest.approx(200.0)
    assert endpointer.done


def test_voice_during_hangover_cancels_it_and_the_utterance_continues():
    events, _ = run("#" * 8 + "." * 5 + "##" + "." * 10, SETTINGS)
    kinds = [type(e) for _, e in events]
    assert kinds == [SpeechStarted, HangoverStarted, HangoverCancelled, HangoverStarted, SpeechEnded]
    assert events[2][1].revision == 1 and events[4][1].revision == 2
    assert frame_ids(events[4][1].audio)[-1] == 14 + 4  # audio runs through the resumed speech


def test_short_gap_inside_speech_does_not_start_hangover():
    events, _ = run("#" * 8 + "..." + "#" * 8 + "." * 10, SETTINGS)
    assert [type(e) for _, e in events] == [SpeechStarted, HangoverStarted, SpeechEnded]


def test_click_shorter_than_min_speech_is_ignored_then_no_input():
    events, _ = run("..##" + "." * 60, SETTINGS)
    assert [(i, type(e)) for i, e in events] == [(49, NoInput)]
    assert events[0][1].waited_ms == pytest.approx(1000.0)


def test_onset_may_bridge_short_gaps():
    events, _ = run("##.##.#" + "." * 20, SETTINGS)
    assert isinstance(events[0][1], SpeechStarted) and events[0][0] == 6
    assert events[0][1].at_ms == 0.0


def test_no_input_waits_for_an_onset_in_progress():
    events, _ = run("." * 48 + "#" * 6 + "." * 20, SETTINGS)
    assert isinstance(events[0][1], SpeechStarted)
    assert not any(isinstance(e, NoInput) for _, e in events)


def test_max_utterance_cuts_a_never_ending_speaker():
    events, endpointer = run("#" * 150, SETTINGS)
    assert [(i, type(e)) for i, e in events] == [(4, SpeechStarted), (99, MaxUtterance)]
    assert events[1][1].audio.size == 100 * FRAME and endpointer.done


def test_frames_after_done_are_ignored():
    endpointer = Endpointer(ListenSettings(no_input_timeout_ms=40))
    silent = np.zeros(FRAME, np.int16)
    assert endpointer.feed(silent, False) == []
    assert [type(e) for e in endpointer.feed(silent, False)] == [NoInput]
    assert endpointer.done
    assert [endpointer.feed(np.ones(FRAME, np.int16), True) for _ in range(20)] == [[]] * 20


def test_frame_size_sets_the_clock():
    endpointer = Endpointer(ListenSettings(no_input_timeout_ms=100), sample_rate=8000)
    events = [e for _ in range(10) for e in endpointer.feed(np.zeros(80, np.int16), False)]  # 10 ms frames
    assert len(events) == 1 and events[0].waited_ms == pytest.approx(100.0)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"end_silence_ms": 0}, "end_silence_ms must be > 0"),
        ({"hangover_start_ms": 900, "end_silence_ms": 700}, "hangover_start_ms"),
        ({"pre_roll_ms": -1}, "pre_roll_ms must be >= 0"),
        ({"min_speech_ms": 5000, "max_utterance_ms": 1000}, "min_speech_ms"),
    ],
)
def test_bad_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ListenSettings(**kwargs)


def test_bad_frame_is_rejected():
    with pytest.raises(ValueError, match="1-D"):
        Endpointer().feed(np.zeros((2, 160), np.int16), True)
