"""Regenerate the caller audio fixtures: bundled voices → 8 kHz G.711 μ-law round trip (sox) → 16-bit WAV.

    .venv/bin/python tests/audio_fixtures/generate.py [--force]

Existing files are kept unless --force is given.

Each fixture is `<name>.wav` (8 kHz mono PCM16, what a phone line delivers) with its text in fixtures.yaml.
Piper's synthesis is stochastic, so a regenerated file differs slightly; tests assert words, not bytes.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import yaml

HERE = Path(__file__).resolve().parent
LEAD_SILENCE_S = 0.3
TAIL_SILENCE_S = 0.6


def render(text: str, voice: str) -> tuple[np.ndarray, int]:
    if voice == "zh":
        from voicebot.speech.voices import default_voices

        engine = default_voices()["zh"].load()
    else:
        from voicebot.speech.tts import PiperTts

        engine = PiperTts()
    return engine.synthesize(text)


def g711_round_trip(pcm: np.ndarray, rate: int, out: Path) -> None:
    """Through sox: resample to 8 kHz, encode μ-law, decode back to PCM16 (the telephone path)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src.wav"
        ulaw = Path(tmp) / "line.wav"
        padded = np.concatenate([np.zeros(int(rate * LEAD_SILENCE_S), np.int16), pcm,
                                 np.zeros(int(rate * TAIL_SILENCE_S), np.int16)])
        soundfile.write(src, padded, rate, subtype="PCM_16")
        subprocess.run(["sox", str(src), "-r", "8000", "-c", "1", "-e", "u-law", str(ulaw)], check=True)
        subprocess.run(["sox", str(ulaw), "-e", "signed-integer", "-b", "16", str(out)], check=True)


def main() -> int:
    spec = yaml.safe_load((HERE / "fixtures.yaml").read_text(encoding="utf-8"))
    force = "--force" in sys.argv[1:]
    for name, item in spec["fixtures"].items():
        if (HERE / f"{name}.wav").exists() and not force:
            continue
        pcm, rate = render(item["text"], item.get("voice", "en"))
        g711_round_trip(pcm, rate, HERE / f"{name}.wav")
        print(f"{name}.wav  {item['text']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
