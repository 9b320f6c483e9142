"""Frame voice-activity detection (webrtcvad) and a detector that turns a PCM stream into listen events."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from voicebot.speech.endpointer import Endpointer, EndpointEvent, ListenSettings

VAD_RATES = (8000, 16000, 32000, 48000)
VAD_FRAME_MS = (10, 20, 30)


class FrameVad:
    """webrtcvad over fixed frames (default 16 kHz, 20 ms = 320 samples). aggressiveness 0 (lenient) .. 3 (strict).

    ``energy_floor`` (RMS, int16 scale): quieter frames are silence whatever webrtcvad says. webrtcvad keeps
    reporting speech for ~100 ms of true silence after a word (its internal hangover); the floor ends that at once
    on a quiet line, so the end-of-speech silence is counted from the real end of the words (0 disables it).
    """

    def __init__(self, aggressiveness: int = 2, sample_rate: int = 16000, frame_ms: int = 20,
                 energy_floor: float = 0.0) -> None:
        import webrtcvad

        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0, 1, 2 or 3, got {aggressiveness!r}")
        if sample_rate not in VAD_RATES:
            raise ValueError(f"webrtcvad supports sample rates {VAD_RATES}, got {sample_rate}")
        if frame_ms not in VAD_FRAME_MS:
            raise ValueError(f"webrtcvad supports frames of {VAD_FRAME_MS} ms, got {frame_ms}")
        if energy_floor < 0:
            raise ValueError(f"energy_floor must be >= 0, got {energy_floor!r}")
        self.sample_rate, self.frame_ms = sample_rate, frame_ms
        self.energy_floor = float(energy_floor)
        self.frame_samples = sample_rate * frame_ms // 1000
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: np.ndarray) -> bool:
        """True if this one int16 frame contains speech."""
        if frame.dtype != np.int16 or frame.shape != (self.frame_samples,):
            raise ValueError(
                f"expected an int16 frame of {self.frame_samples} samples "
                f"({self.frame_ms} ms at {self.sample_rate} Hz), got {frame.dtype} {frame.shape}"
            )
        speech = bool(self._vad.is_speech(frame.tobytes(), self.sample_rate))  # always: keeps its state current
        if speech and self.energy_floor > 0:
            rms = float(np.sqrt(np.mean(frame.astype(np.float32) ** 2)))
            return rms >= self.energy_floor
        return speech

    def frames(self, pcm: np.ndarray) -> Iterator[tuple[np.ndarray, bool]]:
        """Split whole int16 audio into frames (a partial last frame is dropped) with voiced flags."""
        for start in range(0, pcm.size - self.frame_samples + 1, self.frame_samples):
            frame = pcm[start : start + self.frame_samples]
            yield frame, self.is_speech(frame)


class SpeechDetector:
    """FrameVad + Endpointer for one listen, fed PCM chunks of any size (e.g. 20 ms from RTP at 16 kHz)."""

    def __init__(self, settings: ListenSettings | None = None, vad: FrameVad | None = None) -> None:
        self.vad = vad or FrameVad()
        self.endpointer = Endpointer(settings or ListenSettings(), sample_rate=self.vad.sample_rate)
        self._pending = np.zeros(0, dtype=np.int16)

    @property
    def done(self) -> bool:
        return self.endpointer.done

    def feed(self, pcm: np.ndarray) -> list[EndpointEvent]:
        """Feed int16 PCM at the VAD rate; returns the events of every complete frame it contains."""
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise ValueError(f"SpeechDetector expects 1-D int16 PCM, got {pcm.dtype} {pcm.shape}")
        buffer = np.concatenate([self._pending, pcm]) if self._pending.size else pcm
        usable = buffer.size - buffer.size % self.vad.frame_samples
        self._pending = buffer[usable:].copy()
        events: list[EndpointEvent] = []
        for frame, voiced in self.vad.frames(buffer[:usable]):
            if self.endpointer.done:
                break
            events.extend(self.endpointer.feed(frame, voiced))
        return events
