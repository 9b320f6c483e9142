"""Audio as the server hears it over a phone line, for `voicebot hear`, benchmarks and tests.

8 kHz G.711 (μ-law by default) encode/decode with the project's own codec (voicebot.rtp.g711), then the server's
8 -> 16 kHz resampling (voicebot.speech.resample; one-shot equals the SIP channel's stream resampler).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from voicebot.rtp.g711 import get_codec
from voicebot.speech.resample import resample

WIRE_RATE = 8000
APP_RATE = 16000


def through_phone_line(pcm: np.ndarray, rate: int, codec: str = "PCMU") -> np.ndarray:
    """int16 mono `pcm` at `rate` -> the 16 kHz int16 audio the recogniser gets from a G.711 call."""
    array = np.asarray(pcm)
    if array.ndim != 1 or array.dtype != np.int16:
        raise ValueError(f"expected 1-D int16 PCM, got {array.dtype} {array.shape}")
    if rate < 8000:
        raise ValueError(f"sample rate must be >= 8000 Hz, got {rate}")
    wire = resample(array, rate, WIRE_RATE) if rate != WIRE_RATE else array
    line = get_codec(codec)
    return resample(line.decode(line.encode(wire)), WIRE_RATE, APP_RATE)


def join_with_pauses(clips: Sequence[np.ndarray], rate: int, rng: random.Random, *,
                     pause_s: tuple[float, float] = (0.15, 0.45), lead_s: float = 0.2) -> np.ndarray:
    """Clips (e.g. one speaker's single digits) joined by random pauses of `pause_s` seconds, with silence around."""
    if not clips:
        raise ValueError("no clips to join")
    silence = np.zeros(int(rate * lead_s), dtype=np.int16)
    parts: list[np.ndarray] = [silence]
    for index, clip in enumerate(clips):
        if index:
            parts.append(np.zeros(int(rate * rng.uniform(*pause_s)), dtype=np.int16))
        parts.append(np.asarray(clip, dtype=np.int16))
    parts.append(silence)
    return np.concatenate(parts)
