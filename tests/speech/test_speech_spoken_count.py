"""Counting the words of a digit string read one by one from its pauses (voicebot.speech.spoken_count).

Real voices: FSDD george and lucas (tests/audio_fixtures/human, CC BY-SA 4.0, see the README there), joined with the
shortest pauses the benchmark uses (150 ms) and heard through the G.711 line.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicebot.speech.phoneline import join_with_pauses, through_phone_line
from voicebot.speech.spoken_count import word_count, word_spans

HUMAN = Path(__file__).resolve().parents[1] / "audio_fixtures" / "human"


def spoken(digits: str, speaker: str, pause_s: tuple[float, float] = (0.15, 0.16)) -> np.ndarray:
    clips = [soundfile.read(str(HUMAN / f"{d}_{speaker}_3.flac"), dtype="int16")[0] for d in digits]
    return through_phone_line(join_with_pauses(clips, 8000, random.Random(7), pause_s=pause_s), 8000)


@pytest.mark.parametrize("speaker", ["george", "lucas"])
@pytest.mark.parametrize("digits", ["0123456789", "7484370", "43334439", "9876543210666"])
def test_each_digit_read_one_by_one_is_one_word(speaker, digits):
    assert word_count(spoken(digits, speaker), 16000) == len(digits)


def test_the_spans_follow_the_words_in_time():
    audio = spoken("8206", "george", pause_s=(0.4, 0.4))
    spans = word_spans(audio, 16000)
    assert len(spans) == 4
    assert all(b > a for a, b in spans)
    assert all(later[0] - earlier[1] >= 0.3 for earlier, later in zip(spans, spans[1:]))  # the 400 ms pauses


def test_digits_run_together_are_not_counted_apart():
    assert word_count(spoken("333", "george", pause_s=(0.0, 0.0)), 16000) < 3


def test_silence_and_steady_noise_have_no_words():
    assert word_count(np.zeros(16000, np.int16), 16000) == 0
    noise = np.random.default_rng(1).normal(0, 2000, 16000).astype(np.int16)
    assert word_count(noise, 16000) == 0
