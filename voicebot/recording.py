"""Call recording: stereo WAV (left = caller, right = bot/agent), tick-aligned, written as the call goes.

Frames arrive from the media ticker (one pair per 20 ms) and are written every half second, so a crash or kill
loses at most the last half second. Pauses (sensitive input) write silence and are listed in ``pauses``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile
from soundfile import _ffi, _snd  # noqa: PLC2701 - sf_command(SFC_UPDATE_HEADER_NOW) has no public wrapper

log = logging.getLogger("voicebot.recording")

FRAME = 160  # 20 ms at 8 kHz
FLUSH_FRAMES = 25
SFC_UPDATE_HEADER_NOW = 0x1060  # libsndfile: rewrite the WAV header sizes so the file is valid if we die


class CallRecorder:
    """Writes ``<dir>/<call-id>.wav``; feed it with :meth:`on_tick` from ``RtpStream.on_tick_media``."""

    def __init__(self, directory: Path, name: str, decode: Callable[[bytes], np.ndarray], rate: int = 8000) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120]
        self.path = directory / f"{safe}.wav"
        self._decode = decode
        self._file = soundfile.SoundFile(str(self.path), mode="w", samplerate=rate, channels=2, subtype="PCM_16")
        self._buffer = np.zeros((FLUSH_FRAMES * FRAME, 2), dtype=np.int16)
        self._filled = 0
        self.frames = 0
        self.paused = False
        self.pauses: list[dict[str, float]] = []
        self._started = time.time()

    def pause(self, paused: bool) -> None:
        """Pause (write silence) or resume; each pause is kept for the call record."""
        if paused == self.paused:
            return
        self.paused = paused
        offset = round(self.frames * FRAME / 8000, 2)
        if paused:
            self.pauses.append({"from_s": offset})
        elif self.pauses:
            self.pauses[-1]["to_s"] = offset

    def on_tick(self, caller: np.ndarray | None, sent: bytes | None) -> None:
        if self._file.closed:
            return
        row = self._buffer[self._filled:self._filled + FRAME]
        if self.paused:
            row[:] = 0
        else:
            row[:, 0] = caller[:FRAME] if caller is not None and len(caller) >= FRAME else 0
            row[:, 1] = self._decode(sent)[:FRAME] if sent else 0
        self._filled += FRAME
        self.frames += 1
        if self._filled >= len(self._buffer):
            self._flush()

    def _flush(self) -> None:
        if self._filled:
            self._file.write(self._buffer[:self._filled])
            _snd.sf_command(self._file._file, SFC_UPDATE_HEADER_NOW, _ffi.NULL, 0)  # noqa: SLF001
            self._file.flush()
            self._filled = 0

    def close(self) -> None:
        if not self._file.closed:
            self._flush()
            self._file.close()
