"""What one turn's recognition may cost a speech worker: bounded decodes, no 30 s window when the grammar answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicebot.speech.asr import WhisperAsr, full_window_max_length
from voicebot.speech.grammar import Grammar
from voicebot.speech.resample import resample

HUMAN = Path(__file__).parents[1] / "audio_fixtures" / "human"  # FSDD takes, see its README.md (Apache-2.0)


def spoken_digits(digits: str, speaker: str, pause_s: float = 0.25) -> np.ndarray:
    """One FSDD speaker reading `digits` one at a time, through the server's 8 -> 16 kHz resampling."""
    parts = []
    for digit in digits:
        audio, rate = soundfile.read(str(HUMAN / f"{digit}_{speaker}_3.flac"), dtype="int16")
        parts += [resample(audio, rate, 16000), np.zeros(int(pause_s * 16000), np.int16)]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def base() -> WhisperAsr:
    return WhisperAsr("base")


def test_full_window_token_budget_grows_with_the_audio_and_stops_at_the_model_limit() -> None:
    assert full_window_max_length(448, 3.0) == 2 * (36 + 24)
    assert full_window_max_length(448, 10.0) == 2 * (120 + 24)
    assert full_window_max_length(448, 30.0) == 448


@pytest.mark.timeout(300)
def test_a_looping_full_window_decode_stops_within_the_budget(base: WhisperAsr) -> None:
    audio = spoken_digits("000000", "george")  # base loops on it: "0 0 0 0 ..." on both windows
    result = base.transcribe(audio, language="en")
    words = result.text.split()
    assert result.window_s == 30.0 and set(words) == {"0"}
    # uncapped it wrote 224 zeros (the model's 448 tokens, decoded to half): 6-8 s of a worker on a busy box
    assert len(words) <= full_window_max_length(448, audio.size / 16000) // 2


@pytest.mark.timeout(300)
def test_a_digit_string_that_loops_the_free_short_decode_is_answered_by_the_grammar_on_that_window(
        base: WhisperAsr) -> None:
    audio = spoken_digits("123123", "lucas")
    free = base.transcribe(audio, language="en")
    assert free.window_s == 30.0  # "1 2 3 1 2 3" is a repetition to the free decode's loop rule: redone on 30 s
    grammar = Grammar(kind="digits", min_digits=6, max_digits=6)
    heard = base.transcribe(audio, language="en", grammar=grammar)
    assert heard.grammar_value == "123123"
    assert heard.window_s == 10.0  # no 30 s encode (about four times the short window's)
