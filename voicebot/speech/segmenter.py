"""Continuous utterance segmentation of one audio stream (a bridged leg): VAD + endpointer, restarted after each
utterance, so a conversation of any length comes out as a sequence of finished utterances.

Pure apart from webrtcvad: frames in, :class:`Segment` s out; time is the audio fed, not a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voicebot.speech.endpointer import ListenSettings, MaxUtterance, SpeechEnded
from voicebot.speech.resample import StreamResampler, resample
from voicebot.speech.vad import VAD_RATES, FrameVad, SpeechDetector

ASR_RATE = 16000
# A bridged conversation: shorter end-of-utterance silence than a bot's listen (people answer fast), long lines cut.
LIVE_LISTEN = ListenSettings(no_input_timeout_ms=60_000, end_silence_ms=600, max_utterance_ms=12_000,
                             min_speech_ms=200, hangover_start_ms=200)


@dataclass(frozen=True)
class Segment:
    """One finished utterance: 16 kHz int16 audio, and where it ended in the stream (seconds of audio fed)."""

    audio: np.ndarray
    ended_at_s: float

    @property
    def duration_s(self) -> float:
        return self.audio.size / ASR_RATE


class StreamSegmenter:
    """Feed int16 PCM at ``rate`` (any chunk size); returns the utterances it completes, as 16 kHz audio."""

    def __init__(self, rate: int, settings: ListenSettings = LIVE_LISTEN, aggressiveness: int = 2) -> None:
        self.rate = rate
        self.vad_rate = rate if rate in VAD_RATES else ASR_RATE
        self._to_vad = StreamResampler(rate, self.vad_rate) if self.vad_rate != rate else None
        self.settings = settings
        self.aggressiveness = aggressiveness
        self.fed_s = 0.0
        self._detector = self._new_detector()

    def _new_detector(self) -> SpeechDetector:
        return SpeechDetector(self.settings, FrameVad(self.aggressiveness, sample_rate=self.vad_rate))

    def feed(self, pcm: np.ndarray) -> list[Segment]:
        self.fed_s += pcm.size / self.rate
        audio = self._to_vad.process(pcm) if self._to_vad is not None else pcm
        segments: list[Segment] = []
        for event in self._detector.feed(np.asarray(audio, dtype=np.int16)):
            if isinstance(event, (SpeechEnded, MaxUtterance)):
                segments.append(Segment(self._for_asr(event.audio), self.fed_s))
        if self._detector.done:  # one utterance (or a long silence: NoInput) per detector: start the next
            self._detector = self._new_detector()
        return segments

    def _for_asr(self, audio: np.ndarray) -> np.ndarray:
        if self.vad_rate == ASR_RATE:
            return np.asarray(audio, dtype=np.int16)
        return resample(np.asarray(audio, dtype=np.int16), self.vad_rate, ASR_RATE)
