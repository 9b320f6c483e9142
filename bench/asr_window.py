"""Whisper accuracy and decode cost per encoder window, on telephone-band speech of real customer requests.

Banking77 test sentences (../shared/datasets/banking77/test.csv, a seeded sample) are spoken by the bundled Piper
voice at three speaking rates, sent through a G.711 mu-law round trip at 8 kHz, and recognised by
`WhisperAsr` once per window size. Prints word error rate, sentences with any error, and decode time per window,
so `speech.asr_window_s` can be chosen on evidence rather than a handful of fixtures.

Run: .venv/bin/python bench/asr_window.py [--model tiny.en] [--sentences 300] [--windows 30,20,15,10]
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import BenchRecord  # noqa: E402
from voicebot.rtp.g711 import ulaw_decode, ulaw_encode  # noqa: E402
from voicebot.speech.asr import WhisperAsr  # noqa: E402
from voicebot.speech.resample import resample  # noqa: E402
from voicebot.speech.tts import PiperTts  # noqa: E402
from bench.scoring import edit_distance  # noqa: E402

BANKING77_TEST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "banking77" / "test.csv"
SPEAKING_RATES = (0.9, 1.0, 1.15)  # Piper length_scale: faster, normal, slower


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (apostrophes kept: "don't" is one word)."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))


def telephone_audio(tts_by_rate: dict[float, PiperTts], text: str, rate_choice: float) -> np.ndarray:
    """`text` spoken at `rate_choice`, as the server hears it: 8 kHz mu-law, back to 16 kHz int16."""
    tts = tts_by_rate[rate_choice]
    pcm, sample_rate = tts.synthesize(text)
    wire = ulaw_decode(ulaw_encode(resample(pcm, sample_rate, 8000)))
    return resample(wire, 8000, 16000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en", help="tiny.en or base")
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--windows", default="30,20,15,10", help="encoder windows in seconds")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    with BenchRecord(f"asr_window_{args.model.replace('.', '_')}") as record:
        with BANKING77_TEST.open(encoding="utf-8") as handle:
            texts = [row["text"] for row in csv.DictReader(handle)]
        picker = random.Random(args.seed)
        sample = picker.sample(texts, args.sentences)
        rates = [picker.choice(SPEAKING_RATES) for _ in sample]

        tts_by_rate = {rate: PiperTts(length_scale=rate) for rate in SPEAKING_RATES}
        started = time.perf_counter()
        audio = [telephone_audio(tts_by_rate, text, rate) for text, rate in zip(sample, rates)]
        seconds = [clip.size / 16000 for clip in audio]
        print(f"{len(sample)} Banking77 test sentences spoken by Piper (length_scale {SPEAKING_RATES}), G.711 mu-law "
              f"round trip; {statistics.median(seconds):.1f} s median, {max(seconds):.1f} s longest; rendered in "
              f"{time.perf_counter() - started:.0f} s")

        reference_words = [words(text) for text in sample]
        total_words = sum(len(ref) for ref in reference_words)
        print(f"model {args.model}, one CPU thread, greedy decode")
        per_window: dict[str, dict[str, float]] = {}
        print(f"{'window':>7} {'WER':>7} {'sentences wrong':>16} {'decode p50':>11} {'decode p95':>11}")
        for window in (float(w) for w in args.windows.split(",")):
            asr = WhisperAsr(args.model, window_s=window)
            errors, wrong, decode_s = 0, 0, []
            for clip, ref in zip(audio, reference_words):
                result = asr.transcribe(clip, language="en")
                distance = edit_distance(ref, words(result.text))
                errors += distance
                wrong += distance > 0
                decode_s.append(result.decode_s)
            decode_s.sort()
            print(f"{window:>6.0f}s {errors / total_words:>7.2%} {wrong:>10}/{len(audio):<5} "
                  f"{statistics.median(decode_s) * 1000:>9.0f}ms {decode_s[int(0.95 * (len(decode_s) - 1))] * 1000:>9.0f}ms")
            per_window[f"{window:g}"] = {"wer": errors / total_words, "sentences_wrong": wrong,
                                         "decode_p50_s": statistics.median(decode_s)}
        record.data.update(model=args.model, sentences=len(sample), windows=per_window)
        record.row(f"Whisper {args.model} accuracy per window ({len(sample)} Banking77 requests, Piper voice at 3 "
                   f"rates, G.711)", "; ".join(f"{window} s: WER {figures['wer']:.1%}, decode p50 "
                                                f"{figures['decode_p50_s']:.2f} s"
                                                for window, figures in per_window.items()))


if __name__ == "__main__":
    main()
