"""Hold audio: a configured WAV file or a gentle generated melody, as 8 kHz int16 PCM.

The loaded array is read-only: every waiting caller plays the same array, so its G.711 payload is encoded once
(voicebot.rtp.payloads) and shared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from voicebot.speech.resample import resample

RATE = 8000
# A calm I–vi–IV–V arpeggio (C major), half a second per note.
_NOTES_HZ = (261.6, 329.6, 392.0, 329.6, 220.0, 261.6, 329.6, 261.6, 174.6, 220.0, 261.6, 220.0,
             196.0, 246.9, 293.7, 246.9)


def generated_hold_music(seconds: float = 16.0, rate: int = RATE, level: float = 0.12) -> np.ndarray:
    """A looping melody of soft sine notes with fade in/out per note (no clicks), ``level`` of full scale."""
    note_len = int(rate * 0.5)
    t = np.arange(note_len) / rate
    envelope = np.minimum(1.0, np.minimum(t / 0.05, (t[-1] - t) / 0.15 + 0.05))
    notes = [np.sin(2 * np.pi * f * t) * 0.7 + np.sin(2 * np.pi * 2 * f * t) * 0.15 for f in _NOTES_HZ]
    phrase = np.concatenate([n * envelope for n in notes])
    repeats = max(1, int(np.ceil(seconds * rate / len(phrase))))
    audio = np.tile(phrase, repeats)[: int(seconds * rate)]
    return (audio / np.max(np.abs(audio)) * level * 32767).astype(np.int16)


def load_hold_audio(path: str | Path | None) -> np.ndarray:
    """The configured hold file (any rate, mixed to mono) or the generated melody, read-only (shared by calls)."""
    if path is None:
        audio = generated_hold_music()
    else:
        stereo, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
        mono = stereo.mean(axis=1).astype(np.int16)
        audio = resample(mono, rate, RATE) if rate != RATE else mono
    audio.flags.writeable = False
    return audio
