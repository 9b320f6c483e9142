"""Audio helpers for the test softphone: prepare WAVs for pjsua and measure recordings.

The conversion and measurement functions are pure (numpy in, numpy out); only
`prepare_playback_wav` and `measure_recording` touch files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

PLAYBACK_RATE = 16000
"""Sample rate of the WAV handed to pjsua's file player (its conference bridge runs at 16 kHz)."""


class AudioFileError(ValueError):
    """An input or recorded audio file cannot be read."""


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) array; a 1-D array is returned unchanged."""
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise ValueError(f"expected 1-D or 2-D samples, got {samples.ndim}-D")
    return samples.mean(axis=1)


def resample_linear(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample mono float samples by linear interpolation (adequate for test prompts)."""
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
    if src_rate == dst_rate or samples.size == 0:
        return samples.astype(np.float64, copy=False)
    out_len = max(1, int(round(samples.size * dst_rate / src_rate)))
    src_times = np.arange(samples.size) / src_rate
    dst_times = np.arange(out_len) / dst_rate
    return np.interp(dst_times, src_times, samples)


def float_to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Convert float samples in [-1, 1] to int16, clipping out-of-range values."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype(np.int16)


def rms(samples: np.ndarray) -> float:
    """Root-mean-square of float samples (0.0 for an empty array)."""
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def prepare_playback_wav(source: Path, destination: Path) -> Path:
    """Write `source` (any rate/channels soundfile reads) as 16 kHz mono PCM16 WAV at `destination`."""
    try:
        data, rate = sf.read(str(source), dtype="float64", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(f"cannot read audio file {source}: {exc}") from exc
    mono = to_mono(np.asarray(data))
    if mono.size == 0:
        raise AudioFileError(f"audio file {source} has no samples")
    pcm = float_to_pcm16(resample_linear(mono, int(rate), PLAYBACK_RATE))
    sf.write(str(destination), pcm, PLAYBACK_RATE, subtype="PCM_16", format="WAV")
    return destination


@dataclass(frozen=True)
class RecordingStats:
    """Length and loudness of a recorded WAV."""

    seconds: float
    rms: float


def measure_recording(path: Path) -> RecordingStats:
    """Read a recorded WAV and return its length in seconds and its RMS (full scale = 1.0)."""
    try:
        data, rate = sf.read(str(path), dtype="float64", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(f"cannot read recording {path}: {exc}") from exc
    mono = to_mono(np.asarray(data))
    return RecordingStats(seconds=mono.size / rate if rate else 0.0, rms=rms(mono))
