"""webrtcvad frames and the SpeechDetector on real Piper speech surrounded by silence."""

import numpy as np
import pytest

from voicebot.speech.endpointer import HangoverStarted, ListenSettings, NoInput, SpeechEnded, SpeechStarted
from voicebot.speech.resample import resample
from voicebot.speech.tts import PiperTts
from voicebot.speech.vad import FrameVad, SpeechDetector

RATE = 16000


@pytest.fixture(scope="module")
def speech16k() -> np.ndarray:
    pcm, rate = PiperTts().synthesize("I would like to check my account balance, please.")
    return resample(pcm, rate, RATE)


def quiet_noise(seconds: float, seed: int = 3, level: float = 5.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, level, int(RATE * seconds)).astype(np.int16)


def test_vad_marks_speech_voiced_and_silence_unvoiced(speech16k):
    vad = FrameVad(aggressiveness=2)
    speech_flags = [voiced for _, voiced in vad.frames(speech16k)]
    silence_flags = [voiced for _, voiced in vad.frames(np.zeros(RATE, np.int16))]
    assert np.mean(speech_flags) > 0.6
    assert not any(silence_flags)


def test_detector_finds_the_utterance_inside_silence(speech16k):
    lead, tail = 1.0, 1.5
    call_audio = np.concatenate([quiet_noise(lead), speech16k, quiet_noise(tail, seed=4)])
    detector = SpeechDetector(ListenSettings(end_silence_ms=600, hangover_start_ms=250))
    events = []
    for start in range(0, call_audio.size, 320):  # 20 ms RTP-sized chunks
        events.extend(detector.feed(call_audio[start : start + 320]))
    kinds = [type(e) for e in events]
    assert kinds[0] is SpeechStarted and kinds[-1] is SpeechEnded
    assert HangoverStarted in kinds
    assert events[0].at_ms == pytest.approx(lead * 1000, abs=150)
    ended = events[-1]
    speech_seconds = speech16k.size / RATE
    assert ended.speech_ms / 1000 == pytest.approx(speech_seconds, abs=0.35)
    assert ended.audio.size / RATE == pytest.approx(speech_seconds + 0.3 + 0.25, abs=0.4)
    assert detector.done


def test_detector_reports_no_input_on_silence_and_accepts_odd_chunk_sizes():
    detector = SpeechDetector(ListenSettings(no_input_timeout_ms=500))
    audio = quiet_noise(1.0)
    events = [e for start in range(0, audio.size, 77) for e in detector.feed(audio[start : start + 77])]
    assert [type(e) for e in events] == [NoInput]
    assert events[0].waited_ms == pytest.approx(500.0)


def test_energy_floor_ends_webrtcvads_hangover_on_a_quiet_line(speech16k):
    """webrtcvad calls ~100 ms of digital silence after the last word speech; the floor stops at the words."""
    loud = np.flatnonzero(np.abs(speech16k) > 300)
    words = speech16k[: loud[-1] + 1]
    call_audio = np.concatenate([words, np.zeros(RATE, np.int16)])
    last_word_frame = (words.size - 1) // 320

    def last_voiced(vad: FrameVad) -> int:
        return max(i for i, (_, voiced) in enumerate(vad.frames(call_audio)) if voiced)

    plain, floored = last_voiced(FrameVad(2)), last_voiced(FrameVad(2, energy_floor=60))
    assert plain - last_word_frame >= 3  # the hangover this removes
    assert last_word_frame - 2 <= floored <= last_word_frame + 1
    speech_flags = [voiced for _, voiced in FrameVad(2, energy_floor=60).frames(speech16k)]
    assert np.mean(speech_flags) > 0.6  # speech itself stays speech


@pytest.mark.parametrize(
    "kwargs,message",
    [({"aggressiveness": 4}, "aggressiveness"), ({"sample_rate": 22050}, "sample rates"),
     ({"frame_ms": 25}, "frames of"), ({"energy_floor": -1}, "energy_floor")],
)
def test_bad_vad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FrameVad(**kwargs)


def test_bad_frames_are_rejected():
    vad = FrameVad()
    with pytest.raises(ValueError, match="320 samples"):
        vad.is_speech(np.zeros(160, np.int16))
    with pytest.raises(ValueError, match="int16"):
        SpeechDetector().feed(np.zeros(320, np.float32))
