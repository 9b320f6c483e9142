"""Call recording: stereo WAV (left = caller, right = bot/agent), tick-aligned, written as the call goes.

Frames arrive from the media ticker (one pair per 20 ms) and are written every half second, so a crash or kill
loses at most the last half second. Pauses (sensitive input) write silence and are listed in ``pauses``.

Files are private (0600 in a 0700 directory) and named ``<call-id prefix>.<recording id>.wav``: the recording id is
random and server-side, so no Call-ID a caller can send maps onto another call's file; the exact Call-ID is kept in
the WAV's comment and checked on lookup. A write failure (full disk, quota) stops the recording, never the call.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from soundfile import _ffi, _snd  # noqa: PLC2701 - sf_command(SFC_UPDATE_HEADER_NOW) has no public wrapper

from voicebot.speech.resample import StreamResampler

log = logging.getLogger("voicebot.calls.recording")

FRAME = 160  # 20 ms at 8 kHz
FLUSH_FRAMES = 25
CALLER_BACKLOG = 10  # frames of caller audio waiting for the next sent frame (a WebRTC tap); older ones are dropped
SFC_UPDATE_HEADER_NOW = 0x1060  # libsndfile: rewrite the WAV header sizes so the file is valid if we die
RECORDING_ID = re.compile(r"^[0-9a-f]{16}$")
_COMMENT_PREFIX = "call-id: "
_STEM_CHARS = 64


class RecordingError(Exception):
    """A recording could not be created or written (the call goes on without it)."""


def new_recording_id() -> str:
    return secrets.token_hex(8)


def call_id_stem(call_id: str) -> str:
    """A file-name-safe prefix of the Call-ID (for people browsing the folder; never the identity)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in call_id)[:_STEM_CHARS] or "call"


def ensure_private_dir(directory: Path) -> None:
    """Create ``directory`` 0700 (parents too); an existing one readable by others is narrowed to 0700."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if directory.stat().st_mode & 0o077:
            directory.chmod(0o700)
    except OSError as exc:
        raise RecordingError(f"cannot create recording directory {directory}: {exc.strerror or exc}") from exc


def recording_call_id(path: Path) -> str | None:
    """The exact Call-ID a recording belongs to (from its WAV comment), None if unreadable."""
    try:
        with soundfile.SoundFile(str(path)) as wav:
            comment = wav.comment or ""
    except (OSError, RuntimeError):
        return None
    return comment[len(_COMMENT_PREFIX):] if comment.startswith(_COMMENT_PREFIX) else None


def find_recordings(directory: Path, call_id: str) -> list[Path]:
    """Recordings of exactly ``call_id``, oldest first."""
    candidates = directory.glob(f"{call_id_stem(call_id)}.*.wav")
    found = [p for p in candidates if p.is_file() and not p.is_symlink() and recording_call_id(p) == call_id]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def find_recording_by_id(directory: Path, recording_id: str) -> Path | None:
    if not RECORDING_ID.match(recording_id):
        return None
    for path in directory.glob(f"*.{recording_id}.wav"):
        if path.is_file() and not path.is_symlink():
            return path
    return None


class CallRecorder:
    """Writes ``<dir>/<call-id prefix>.<recording id>.wav``; feed it with :meth:`on_tick` from
    ``RtpStream.on_tick_media``. Raises :class:`RecordingError` when the file cannot be created; later write
    errors only stop the recording (``error`` says why)."""

    def __init__(self, directory: Path, call_id: str, decode: Callable[[bytes], np.ndarray], rate: int = 8000) -> None:
        ensure_private_dir(directory)
        self.call_id = call_id
        self.recording_id = new_recording_id()
        self.path = directory / f"{call_id_stem(call_id)}.{self.recording_id}.wav"
        self.error: str | None = None
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise RecordingError(f"cannot create recording {self.path}: {exc.strerror or exc}") from exc
        try:
            self._file = soundfile.SoundFile(fd, mode="w", samplerate=rate, channels=2, subtype="PCM_16",
                                             format="WAV", closefd=True)
            self._file.comment = _COMMENT_PREFIX + call_id
        except (OSError, RuntimeError) as exc:
            os.close(fd)
            raise RecordingError(f"cannot write recording {self.path}: {exc}") from exc
        self._decode = decode
        self._buffer = np.zeros((FLUSH_FRAMES * FRAME, 2), dtype=np.int16)
        self._filled = 0
        self.frames = 0
        self.paused = False
        self.pauses: list[dict[str, float]] = []
        self._started = time.time()

    @property
    def summary(self) -> dict[str, Any]:
        """What the call record keeps: the recording's id and path, pauses, and the error if it failed."""
        result: dict[str, Any] = {"id": self.recording_id, "path": str(self.path), "pauses": self.pauses}
        if self.error is not None:
            result["error"] = self.error
        return result

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
        if self._file.closed or self.error is not None:
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
            try:
                self._file.write(self._buffer[:self._filled])
                _snd.sf_command(self._file._file, SFC_UPDATE_HEADER_NOW, _ffi.NULL, 0)  # noqa: SLF001
                self._file.flush()
            except (OSError, RuntimeError) as exc:  # full disk, quota, file size limit: stop recording only
                self._fail(exc)
            self._filled = 0

    def _fail(self, exc: BaseException) -> None:
        self.error = f"recording write failed: {exc}"
        log.warning("recording stopped", extra={"fields": {"call_id": self.call_id, "recording": self.recording_id,
                                                          "error": self.error}})
        try:
            self._file.close()
        except (OSError, RuntimeError):
            pass

    def close(self) -> None:
        """Write what is buffered and close; never raises (a failure is kept in ``error``)."""
        if not self._file.closed and self.error is None:
            self._flush()
        if not self._file.closed:
            try:
                self._file.close()
            except (OSError, RuntimeError) as exc:
                self.error = self.error or f"recording close failed: {exc}"


def pcm16_bytes(data: bytes) -> np.ndarray:
    """The ``decode`` of a recorder fed linear int16 audio (a :class:`PacedTap`) instead of G.711 payloads."""
    return np.frombuffer(data, dtype=np.int16)


class _Frames:
    """Re-cuts resampled audio into frames of exactly FRAME samples (pure logic)."""

    def __init__(self, rate: int) -> None:
        self._resampler = StreamResampler(rate, 8000) if rate != 8000 else None
        self._rest = np.zeros(0, dtype=np.int16)

    def push(self, pcm: np.ndarray) -> list[np.ndarray]:
        audio = self._resampler.process(pcm) if self._resampler is not None else pcm
        data = np.concatenate([self._rest, audio]) if self._rest.size else audio
        whole = data.size - data.size % FRAME
        self._rest = data[whole:].copy()
        return [data[i:i + FRAME] for i in range(0, whole, FRAME)]


class PacedTap:
    """Feeds a :class:`CallRecorder` (made with ``decode=pcm16_bytes``) from a leg without a media ticker (WebRTC):
    one row per frame the leg sends (its own 20 ms pacing, silence included), with the caller audio received
    meanwhile; both sides resampled from ``rate`` to the recording's 8 kHz."""

    def __init__(self, recorder: CallRecorder, rate: int) -> None:
        self.recorder = recorder
        self._caller_frames = _Frames(rate)
        self._sent_frames = _Frames(rate)
        self._caller: deque[np.ndarray] = deque(maxlen=CALLER_BACKLOG)

    def on_caller(self, frame: np.ndarray) -> None:
        self._caller.extend(self._caller_frames.push(np.asarray(frame, dtype=np.int16)))

    def on_sent(self, frame: np.ndarray) -> None:
        for sent in self._sent_frames.push(np.asarray(frame, dtype=np.int16)):
            self.recorder.on_tick(self._caller.popleft() if self._caller else None, sent.tobytes())
