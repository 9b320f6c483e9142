"""In-band DTMF detection (voicebot.rtp.inband_dtmf): generated keypad tones through G.711, with noise, twist,
short bursts, dropouts and pauses; recorded speech (human and synthetic clips) must never produce a digit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicebot.rtp.g711 import get_codec
from voicebot.rtp.inband_dtmf import InbandDtmfDetector, dtmf_tone
from voicebot.speech.resample import resample

FIXTURES = Path(__file__).resolve().parents[1] / "audio_fixtures"
PCMU = get_codec("PCMU")
GAP = np.zeros(400, dtype=np.int16)  # 50 ms


def detect(pcm: np.ndarray, detector: InbandDtmfDetector | None = None) -> str:
    """Digits found when ``pcm`` goes over a PCMU leg in 20 ms frames."""
    detector = detector or InbandDtmfDetector()
    wire = PCMU.decode(PCMU.encode(np.asarray(pcm, dtype=np.int16)))
    return "".join(d for start in range(0, len(wire) - 159, 160) for d in detector.feed(wire[start:start + 160]))


def keyed(digits: str, tone_ms: float = 60, **tone: float) -> np.ndarray:
    return np.concatenate([np.concatenate([dtmf_tone(d, tone_ms, **tone), GAP]) for d in digits])


def test_every_key_is_detected_once() -> None:
    assert detect(keyed("0123456789*#ABCD")) == "0123456789*#ABCD"


def test_digits_survive_white_noise() -> None:
    signal = keyed("1597#", level_dbm0=-15)
    noise = np.random.default_rng(7).normal(0, 400, len(signal))  # about 20 dB below the tones
    assert detect(np.clip(signal + noise, -32768, 32767)) == "1597#"


def test_a_long_key_press_is_one_digit() -> None:
    assert detect(np.concatenate([dtmf_tone("8", 2000), GAP])) == "8"


@pytest.mark.parametrize("offset", range(0, 160, 20))
def test_forty_ms_is_accepted_and_twenty_five_rejected_at_any_alignment(offset: int) -> None:
    lead = np.zeros(offset, dtype=np.int16)
    assert detect(np.concatenate([lead, dtmf_tone("5", 40), GAP])) == "5"
    assert detect(np.concatenate([lead, dtmf_tone("5", 25), GAP])) == ""


def test_repeated_key_needs_a_pause_and_a_short_dropout_does_not_split_it() -> None:
    pause = np.zeros(320, dtype=np.int16)  # 40 ms
    dropout = np.zeros(80, dtype=np.int16)  # 10 ms
    assert detect(np.concatenate([dtmf_tone("3", 80), pause, dtmf_tone("3", 80), GAP])) == "33"
    assert detect(np.concatenate([dtmf_tone("3", 80), dropout, dtmf_tone("3", 80), GAP])) == "3"


def test_twist_limits() -> None:
    assert detect(keyed("2", twist_db=6)) == "2"  # row 6 dB louder: normal twist within 8 dB
    assert detect(keyed("2", twist_db=12)) == ""
    assert detect(keyed("2", twist_db=-3)) == "2"  # column 3 dB louder: reverse twist within 4 dB
    assert detect(keyed("2", twist_db=-7)) == ""


def test_one_tone_alone_or_too_quiet_is_no_digit() -> None:
    t = np.arange(800) / 8000
    row_only = (3000 * np.sin(2 * np.pi * 697 * t)).astype(np.int16)
    assert detect(np.concatenate([row_only, GAP])) == ""
    assert detect(keyed("4", level_dbm0=-40)) == ""
    assert detect(keyed("4", level_dbm0=-25)) == "4"


def test_synthetic_vowels_and_chords_are_no_digits() -> None:
    """Voiced sounds: harmonics of a 100-300 Hz pitch, some landing on DTMF frequencies; and a three-tone chord."""
    t = np.arange(8000) / 8000
    for pitch in (100.0, 139.4, 170.4, 232.3, 241.8):  # 139.4 * 5 = 697 Hz, 241.8 * 5 ~ 1209 Hz, ...
        vowel = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, int(3500 / pitch)))
        assert detect((6000 * vowel / np.abs(vowel).max()).astype(np.int16)) == "", pitch
    chord = 3000 * (np.sin(2 * np.pi * 697 * t) + np.sin(2 * np.pi * 770 * t) + np.sin(2 * np.pi * 1209 * t))
    assert detect(chord.astype(np.int16)) == ""


def _clips() -> list[Path]:
    return sorted(FIXTURES.glob("*.wav")) + sorted((FIXTURES / "human").glob("*.flac"))


def test_recorded_speech_never_keys_a_digit() -> None:
    """Talk-off: the Piper prompts and the human recordings (English digits, Mandarin), normal and 12 dB louder."""
    clips = _clips()
    assert len(clips) >= 30
    for clip in clips:
        data, rate = sf.read(clip, dtype="int16")
        pcm = resample(data if data.ndim == 1 else data[:, 0], rate, 8000)
        for gain in (1, 4):
            loud = np.clip(pcm.astype(np.int32) * gain, -32768, 32767)
            assert detect(loud) == "", f"{clip.name} x{gain}"


def test_digits_between_speech_are_found() -> None:
    data, rate = sf.read(FIXTURES / "en_account_digits.wav", dtype="int16")
    speech = resample(data, rate, 8000)
    assert detect(np.concatenate([speech, keyed("42"), speech, keyed("#")])) == "42#"


def test_any_chunk_size_gives_the_same_digits() -> None:
    signal = PCMU.decode(PCMU.encode(keyed("907")))
    detector = InbandDtmfDetector()
    found = [d for start in range(0, len(signal), 37) for d in detector.feed(signal[start:start + 37])]
    assert "".join(found) == "907"
