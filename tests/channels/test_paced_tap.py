"""PacedTap: a WebRTC leg's recording, one stereo row per frame sent, the caller's audio received meanwhile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from voicebot.handoff.dialer import codec_preference
from voicebot.calls.recording import CALLER_BACKLOG, CallRecorder, PacedTap, pcm16_bytes


def tone(hz: float, samples: int, rate: int = 16000, start: int = 0) -> np.ndarray:
    t = (np.arange(samples) + start) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)


def share(audio: np.ndarray, rate: int, hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    return float(spectrum[np.abs(freqs - hz) < 40].sum() / max(spectrum.sum(), 1e-9))


def test_rows_follow_the_sent_frames_with_caller_left_and_sent_right(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path, "webrtc-1", pcm16_bytes)
    tap = PacedTap(recorder, 16000)
    for i in range(100):  # two seconds: caller 440 Hz, bot 1000 Hz, both 16 kHz frames of 20 ms
        tap.on_caller(tone(440, 320, start=i * 320))
        tap.on_sent(tone(1000, 320, start=i * 320))
    recorder.close()
    stereo, rate = soundfile.read(str(recorder.path), dtype="int16")
    assert rate == 8000 and stereo.shape[1] == 2
    assert 99 * 160 <= len(stereo) <= 100 * 160  # a row per frame sent (the resampler holds back 3 ms)
    assert share(stereo[800:, 0], rate, 440) > 0.95 and share(stereo[800:, 1], rate, 1000) > 0.95


def test_sent_frames_without_caller_audio_record_silence_and_the_backlog_is_bounded(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path, "webrtc-2", pcm16_bytes)
    tap = PacedTap(recorder, 16000)
    for i in range(CALLER_BACKLOG + 30):  # the caller's frames pile up while nothing is sent
        tap.on_caller(tone(440, 320, start=i * 320))
    for i in range(CALLER_BACKLOG + 20):
        tap.on_sent(np.zeros(320, np.int16))
    recorder.close()
    stereo, _ = soundfile.read(str(recorder.path), dtype="int16")
    left = np.abs(stereo[:, 0].astype(np.int32)).reshape(-1, 160).max(axis=1)
    assert (left[:CALLER_BACKLOG - 1] > 1000).all()  # only the newest CALLER_BACKLOG frames were kept
    assert (left[CALLER_BACKLOG + 1:] == 0).all()  # then silence: no caller audio arrived
    assert not stereo[:, 1].any()


def test_codec_preference_puts_the_callers_codec_first() -> None:
    assert codec_preference("PCMA") == ["PCMA", "PCMU"]
    assert codec_preference("PCMU", ["PCMA", "PCMU"]) == ["PCMU", "PCMA"]
    assert codec_preference(None, ["PCMA", "PCMU"]) == ["PCMA", "PCMU"]  # a browser caller: the configured order
    assert codec_preference("opus") == ["PCMU", "PCMA"]
