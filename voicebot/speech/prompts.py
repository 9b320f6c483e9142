"""On-disk cache of rendered prompts: each (text, voice, rate, engine) is synthesized once, ever."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import soundfile

from voicebot.speech.normalize import NORMALIZER_VERSION, normalize
from voicebot.speech.resample import resample
from voicebot.speech.tts import TtsEngine
from voicebot.speech.voices import VoiceSpec, default_voices

CACHE_FORMAT_VERSION = 1


def prompt_key(text: str, voice: str, rate: int, engine_id: str) -> str:
    """sha256 hex digest identifying one rendering of `text`."""
    material = json.dumps(
        [CACHE_FORMAT_VERSION, NORMALIZER_VERSION, text, voice, int(rate), engine_id], ensure_ascii=False
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class PromptCache:
    """Render text to int16 PCM at a target rate, memoised in memory and as WAV files in `cache_dir`.

    Text is normalised for the voice's language first ("$12.50" -> "twelve dollars and fifty cents").
    Engines load lazily on the first cache miss per voice, so a warm cache never loads a model.
    Writes are atomic (temp file + rename), so concurrent processes sharing the directory are safe.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        voices: Mapping[str, VoiceSpec] | None = None,
        engine_loader: Callable[[VoiceSpec], TtsEngine] | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._voices = dict(voices) if voices is not None else default_voices()
        self._load_engine = engine_loader or (lambda spec: spec.load())
        self._engines: dict[str, TtsEngine] = {}
        self._memory: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self.synthesized = 0  # cache misses served by an engine (observable for tests and metrics)

    def path_for(self, text: str, voice: str = "en", rate: int = 8000) -> Path:
        """Where the rendering of `text` lives (or will live)."""
        spec = self._spec(voice)
        return self.cache_dir / f"{prompt_key(text, voice, rate, spec.engine_id)}.wav"

    def render(self, text: str, voice: str = "en", rate: int = 8000) -> np.ndarray:
        """int16 mono PCM of `text` spoken by `voice` at `rate` Hz (from memory, disk, or the engine)."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"prompt text must be a non-empty string, got {text!r}")
        if not isinstance(rate, int) or rate <= 0:
            raise ValueError(f"rate must be a positive integer sample rate in Hz, got {rate!r}")
        path = self.path_for(text, voice, rate)
        key = path.stem
        cached = self._memory.get(key)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._memory.get(key)
            if cached is None:
                cached = self._read(path, rate)
            if cached is None:
                cached = self._synthesize(text, voice, rate)
                self._write(path, cached, rate)
            cached.flags.writeable = False
            self._memory[key] = cached
        return cached

    def lookup(self, text: str, voice: str = "en", rate: int = 8000) -> np.ndarray | None:
        """A cached rendering (memory, then disk) or None; never loads an engine."""
        path = self.path_for(text, voice, rate)
        cached = self._memory.get(path.stem)
        if cached is None:
            cached = self._read(path, rate)
            if cached is not None:
                cached.flags.writeable = False
                self._memory[path.stem] = cached
        return cached

    def store(self, text: str, voice: str, rate: int, pcm: np.ndarray, pcm_rate: int) -> np.ndarray:
        """Keep audio synthesized elsewhere (a worker process) under its key; returns it at `rate`."""
        audio = resample(pcm, pcm_rate, rate) if pcm_rate != rate else pcm
        path = self.path_for(text, voice, rate)
        self._write(path, audio, rate)
        audio.flags.writeable = False
        self._memory[path.stem] = audio
        return audio

    def prerender(self, texts: Iterable[str], voice: str = "en", rate: int = 8000) -> int:
        """Render every text (e.g. all static prompts at `serve` start); returns how many were new."""
        before = self.synthesized
        for text in texts:
            self.render(text, voice, rate)
        return self.synthesized - before

    def _spec(self, voice: str) -> VoiceSpec:
        try:
            return self._voices[voice]
        except KeyError:
            raise KeyError(f"unknown voice {voice!r}; configured voices: {', '.join(sorted(self._voices))}") from None

    def _synthesize(self, text: str, voice: str, rate: int) -> np.ndarray:
        engine = self._engines.get(voice)
        if engine is None:
            engine = self._engines[voice] = self._load_engine(self._spec(voice))
        pcm, engine_rate = engine.synthesize(normalize(text, self._spec(voice).language))
        self.synthesized += 1
        return resample(pcm, engine_rate, rate) if engine_rate != rate else pcm

    @staticmethod
    def _read(path: Path, rate: int) -> np.ndarray | None:
        try:
            pcm, file_rate = soundfile.read(path, dtype="int16")
        except (FileNotFoundError, soundfile.LibsndfileError, RuntimeError):
            return None  # missing or corrupt: re-render
        if file_rate != rate or pcm.ndim != 1 or pcm.size == 0:
            return None
        return pcm

    @staticmethod
    def _write(path: Path, pcm: np.ndarray, rate: int) -> None:
        handle, temp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".wav", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                soundfile.write(stream, pcm, rate, subtype="PCM_16", format="WAV")
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
