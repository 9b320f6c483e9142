"""Call recording: caller audio written incrementally to a WAV file, so a crash keeps what was recorded."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile

log = logging.getLogger("voicebot.recording")


class CallerRecorder:
    """Appends 20 ms frames of the caller's audio to ``<dir>/<name>.caller.wav`` as they arrive."""

    def __init__(self, directory: Path, name: str, rate: int = 8000) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120]
        self.path = directory / f"{safe}.caller.wav"
        self._file = soundfile.SoundFile(str(self.path), mode="w", samplerate=rate, channels=1, subtype="PCM_16")
        self.frames = 0
        self._paused = False

    def pause(self, paused: bool) -> None:
        self._paused = paused

    def write(self, frame: np.ndarray) -> None:
        if self._file.closed:
            return
        if self._paused:
            frame = np.zeros_like(frame)
        self._file.write(frame)
        self.frames += 1
        if self.frames % 50 == 0:
            self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
