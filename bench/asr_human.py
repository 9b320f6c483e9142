"""Recognition of real people through a G.711 line: free decode vs the listen's grammar (issue 13).

English: FSDD speakers george/jackson/lucas (../shared/datasets/human-speech/fsdd-dev). One speaker's single-digit
recordings are joined with seeded 150-450 ms pauses into 4-16 digit strings; each string is recognised free (the
slot filler's reading of the text: voicebot.dialplan.slots) and against a digits grammar of its exact length; score:
exact string, and for the grammar also how many were a nomatch (asked again) rather than a wrong value.
Mandarin: AISHELL-1 S0252 (aishell-S0252, transcripts.tsv): character error rate of the free decode on a seeded
sample of sentences, and on the utterances that are digit strings free vs a digits grammar (the reading of a
numeral closer to the reference counts: digit by digit or as a quantity). Texts are converted to simplified
characters (zhconv) and stripped of punctuation.
Everything goes through 8 kHz G.711 μ-law and the server's resampling first (voicebot.speech.phoneline).

The recogniser is pluggable: `Recogniser = Callable[[audio16k, lang, Grammar | None], Heard]` (see `whisper`), so
other Mandarin models can be measured the same way.

Run: PYTHONPATH=. .venv/bin/python bench/asr_human.py [--per-speaker 40] [--zh-sentences 60] [--out FILE]
     [--speakers nicolas,theo --fsdd-dir DIR]  (held-out speakers: their own folder; the default is the dev set)
Decode times depend on the box's load: the JSON records cores and load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import numpy as np
import soundfile

from voicebot.nlu.numbers import read_digits
from voicebot.speech.grammar import Grammar, digits_from_text, digits_grammar
from voicebot.speech.phoneline import join_with_pauses, through_phone_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.* when run as a script

from bench.scoring import edit_distance  # noqa: E402

# ../shared beside the repository; HUMAN_SPEECH_DIR points elsewhere (a git worktree has no ../shared beside it)
HUMAN = Path(os.environ.get("HUMAN_SPEECH_DIR")
             or Path(__file__).resolve().parents[2] / "shared" / "datasets" / "human-speech")
SPEAKERS = ("george", "jackson", "lucas")
ZH_DIGIT_STRING = re.compile(r"[零一二三四五六七八九幺两]{4,}")
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Heard:
    text: str
    value: str | None  # the grammar value (None: no grammar, or nothing of it heard)
    decode_s: float
    used: bool = False  # the text is the grammar's (else the free decode's: the fallback)
    cpu_s: float = 0.0  # process CPU time of the recognition (the model runs in this process, one thread)


Recogniser = Callable[[np.ndarray, str, "Grammar | None"], Heard]


def whisper(model: str = "base") -> Recogniser:
    from voicebot.speech.asr import WhisperAsr

    asr = WhisperAsr(model)

    def recognise(audio: np.ndarray, lang: str, grammar: Grammar | None) -> Heard:
        cpu = time.process_time()
        result = asr.transcribe(audio, language=lang, grammar=grammar)
        return Heard(result.text, result.grammar_value, result.decode_s, result.grammar_used,
                     time.process_time() - cpu)

    return recognise


# ------------------------------------------------------------------------------------------------ English digits

FSDD_DIR = HUMAN / "fsdd-dev"


def fsdd_clip(speaker: str, digit: str, take: int, directory: Path | None = None) -> np.ndarray:
    pcm, rate = soundfile.read(str((directory or FSDD_DIR) / f"{digit}_{speaker}_{take}.flac"), dtype="int16")
    assert rate == 8000, rate
    return pcm


def slot_digits(heard: Heard, length: int) -> str | None:
    """The digits slot's value as the dialplan would fill it: the grammar's value; digits heard through the grammar
    but of the wrong length are a nomatch; after a fallback, the free text's digits when their length fits."""
    if heard.value is not None:
        return heard.value
    if heard.used:
        return None
    digits = read_digits(heard.text)
    return digits if len(digits) == length else None


def english_digits(recognise: Recogniser, per_speaker: int, seed: int, speakers: tuple[str, ...] = SPEAKERS,
                    directory: Path | None = None) -> dict:
    rng = random.Random(seed)
    rows = []
    for speaker in speakers:
        for _ in range(per_speaker):
            digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 16)))
            clips = [fsdd_clip(speaker, d, rng.randrange(50), directory) for d in digits]
            audio = through_phone_line(join_with_pauses(clips, 8000, rng), 8000)
            free = recognise(audio, "en", None)
            constrained = recognise(audio, "en", digits_grammar(length=len(digits)))
            rows.append({"speaker": speaker, "digits": digits, "free_text": free.text,
                         "free_value": slot_digits(free, len(digits)), "free_s": round(free.decode_s, 3),
                         "grammar_text": constrained.text, "grammar_used": constrained.used,
                         "grammar_value": slot_digits(constrained, len(digits)),
                         "grammar_s": round(constrained.decode_s, 3), "free_cpu_s": round(free.cpu_s, 3),
                         "grammar_cpu_s": round(constrained.cpu_s, 3)})
            print(f"en {speaker:8} {digits:16} free {rows[-1]['free_value']!s:18} grammar "
                  f"{rows[-1]['grammar_value']!s:18} {free.text!r} / {constrained.text!r} {constrained.used}",
                  file=sys.stderr, flush=True)
    n = len(rows)
    free_ok = sum(r["free_value"] == r["digits"] for r in rows)
    grammar_ok = sum(r["grammar_value"] == r["digits"] for r in rows)
    grammar_nomatch = sum(r["grammar_value"] is None for r in rows)
    free_nomatch = sum(r["free_value"] is None for r in rows)
    goal = [r for r in rows if 6 <= len(r["digits"]) <= 16]  # the goal: 6-16 digit strings
    return {
        "speakers": list(speakers),
        "strings": n,
        "free_exact": free_ok, "free_exact_pct": round(100 * free_ok / n, 1),
        "free_nomatch": free_nomatch, "free_wrong_value": n - free_ok - free_nomatch,
        "grammar_used": sum(r["grammar_used"] for r in rows),
        "grammar_exact": grammar_ok, "grammar_exact_pct": round(100 * grammar_ok / n, 1),
        "grammar_nomatch": grammar_nomatch, "grammar_wrong_value": n - grammar_ok - grammar_nomatch,
        "strings_6_16": len(goal),
        "grammar_exact_6_16_pct": round(100 * sum(r["grammar_value"] == r["digits"] for r in goal)
                                        / max(1, len(goal)), 1),
        "free_decode_s_mean": round(float(np.mean([r["free_s"] for r in rows])), 3),
        "grammar_decode_s_mean": round(float(np.mean([r["grammar_s"] for r in rows])), 3),
        **_cpu(rows),
        "by_speaker": {s: {"free": sum(r["free_value"] == r["digits"] for r in rows if r["speaker"] == s),
                           "grammar": sum(r["grammar_value"] == r["digits"] for r in rows if r["speaker"] == s),
                           "of": sum(r["speaker"] == s for r in rows)} for s in speakers},
        "rows": rows,
    }


# ------------------------------------------------------------------------------------------------ Mandarin

def simplified(text: str) -> str:
    import zhconv

    return _PUNCT.sub("", zhconv.convert(text, "zh-cn"))


_ZH = "零一二三四五六七八九"


def as_quantity(number: str) -> str:
    """'132' -> 一百三十二 (up to 10^16), the reading of a numeral as an amount."""
    value = int(number)
    if value == 0:
        return "零"
    units = ["", "十", "百", "千"]
    groups = ["", "万", "亿", "万亿"]
    out = ""
    group_index = 0
    while value:
        value, chunk = divmod(value, 10000)
        text, zero = "", False
        for position in range(3, -1, -1):
            digit = chunk // 10 ** position % 10
            if digit:
                if zero and text:
                    text += "零"
                text += _ZH[digit] + units[position]
                zero = False
            else:
                zero = bool(text)
        if text:
            out = text + groups[group_index] + ("零" if out and chunk < 1000 else "") + out
        group_index += 1
    return out.replace("一十", "十") if out.startswith("一十") else out


def readings(text: str) -> list[str]:
    """The text with every numeral read digit by digit, and read as a quantity (simplified, no punctuation)."""
    plain = simplified(text)
    by_digit = re.sub(r"\d+", lambda m: "".join(_ZH[int(c)] for c in m.group(0)), plain)
    as_amount = re.sub(r"\d+", lambda m: as_quantity(m.group(0)), plain)
    return list(dict.fromkeys([by_digit, as_amount]))


def cer(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference length) for the reading of the hypothesis closer to the reference; 幺/一 and 两/二 are
    the same digit in a digit string."""
    ref = simplified(reference)
    best = min(edit_distance(_fold(ref), _fold(h)) for h in readings(hypothesis))
    return best, len(ref)


def _fold(text: str) -> str:
    return text.replace("幺", "一").replace("两", "二").replace("〇", "零")


def mandarin(recognise: Recogniser, sentences: int, seed: int) -> dict:
    entries = [line.rstrip("\n").split("\t") for line in (HUMAN / "aishell-S0252" / "transcripts.tsv").open()]
    digit_rows = [(u, r) for u, r in entries if ZH_DIGIT_STRING.fullmatch(r)]
    others = [(u, r) for u, r in entries if not ZH_DIGIT_STRING.fullmatch(r)]
    sample = random.Random(seed).sample(others, min(sentences, len(others)))

    def audio(uid: str) -> np.ndarray:
        pcm, rate = soundfile.read(str(HUMAN / "aishell-S0252" / f"{uid}.flac"), dtype="int16")
        return through_phone_line(pcm, rate)

    free_rows = []
    for uid, ref in sample:
        heard = recognise(audio(uid), "zh", None)
        edits, length = cer(ref, heard.text)
        free_rows.append({"id": uid, "ref": ref, "text": heard.text, "edits": edits, "chars": length,
                          "s": round(heard.decode_s, 3)})
        print(f"zh {uid} {ref} | {heard.text} ({edits})", file=sys.stderr, flush=True)
    digit_out = []
    for uid, ref in digit_rows:
        clip = audio(uid)
        want = digits_from_text(ref)
        free = recognise(clip, "zh", None)
        constrained = recognise(clip, "zh", digits_grammar(length=len(want)))
        free_digits = digits_from_text(simplified(free.text))
        heard_digits = constrained.value if constrained.value is not None else \
            digits_from_text(simplified(constrained.text))
        digit_out.append({"id": uid, "ref": ref, "digits": want, "free_text": free.text, "free_digits": free_digits,
                          "free_edits": min(edit_distance(want, free_digits), cer(ref, free.text)[0]),
                          "grammar_text": constrained.text, "grammar_value": constrained.value,
                          "grammar_edits": edit_distance(want, heard_digits),
                          "free_s": round(free.decode_s, 3), "grammar_s": round(constrained.decode_s, 3),
                          "free_cpu_s": round(free.cpu_s, 3), "grammar_cpu_s": round(constrained.cpu_s, 3)})
        print(f"zh digits {uid} {want} free {free_digits} grammar {constrained.value}", file=sys.stderr, flush=True)
    total_chars = sum(r["chars"] for r in free_rows)
    digit_chars = sum(len(r["digits"]) for r in digit_out)
    n = len(digit_out)
    return {
        "sentences": len(free_rows),
        "free_cer_pct": round(100 * sum(r["edits"] for r in free_rows) / max(1, total_chars), 2),
        "free_decode_s_mean": round(float(np.mean([r["s"] for r in free_rows])), 3) if free_rows else None,
        "digit_strings": n,
        "digits_free_cer_pct": round(100 * sum(r["free_edits"] for r in digit_out) / max(1, digit_chars), 2),
        "digits_grammar_cer_pct": round(100 * sum(r["grammar_edits"] for r in digit_out) / max(1, digit_chars), 2),
        "digits_free_exact": sum(r["free_digits"] == r["digits"] for r in digit_out),
        "digits_grammar_exact": sum(r["grammar_value"] == r["digits"] for r in digit_out),
        "digits_grammar_nomatch": sum(r["grammar_value"] is None for r in digit_out),
        "digits_free_decode_s_mean": round(float(np.mean([r["free_s"] for r in digit_out])), 3) if n else None,
        "digits_grammar_decode_s_mean": round(float(np.mean([r["grammar_s"] for r in digit_out])), 3) if n else None,
        **({f"digits_{k}": v for k, v in _cpu(digit_out).items()} if n else {}),
        "sentence_rows": free_rows,
        "digit_rows": digit_out,
    }


def _cpu(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean process CPU seconds of a turn, free decode vs with the grammar, and their ratio (the box is shared: CPU
    time, not wall time, is what compares)."""
    free = float(np.mean([r["free_cpu_s"] for r in rows]))
    grammar = float(np.mean([r["grammar_cpu_s"] for r in rows]))
    return {"free_cpu_s_mean": round(free, 3), "grammar_cpu_s_mean": round(grammar, 3),
            "grammar_cpu_ratio": round(grammar / free, 2) if free > 0 else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-speaker", type=int, default=40, help="English digit strings per FSDD speaker")
    parser.add_argument("--zh-sentences", type=int, default=60, help="AISHELL sentences for the free CER")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--model", default="base")
    parser.add_argument("--speakers", default=",".join(SPEAKERS),
                        help="FSDD speakers, comma-separated (default: the development ones)")
    parser.add_argument("--fsdd-dir", type=Path, default=None,
                        help="folder of <digit>_<speaker>_<n>.flac (default: human-speech/fsdd-dev); held-out "
                             "speakers' recordings are measured from their own folder")
    parser.add_argument("--skip", choices=("en", "zh"), action="append", default=[])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "asr_human.json"))
    args = parser.parse_args()
    if args.per_speaker < 1 or args.zh_sentences < 0:
        parser.error("--per-speaker must be >= 1 and --zh-sentences >= 0")
    load_before = os.getloadavg()
    started = time.time()
    recognise = whisper(args.model)
    report: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
                                 cwd=Path(__file__).parent).stdout.strip(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
        "model": args.model, "seed": args.seed,
    }
    if "en" not in args.skip:
        report["english_digits"] = english_digits(recognise, args.per_speaker, args.seed,
                                                  tuple(args.speakers.split(",")), args.fsdd_dir)
    if "zh" not in args.skip:
        report["mandarin"] = mandarin(recognise, args.zh_sentences, args.seed)
    report["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    report["wall_s"] = round(time.time() - started, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n")
    summary = {k: v for k, v in report.items() if k not in ("english_digits", "mandarin")}
    for part in ("english_digits", "mandarin"):
        if part in report:
            summary[part] = {k: v for k, v in report[part].items() if not k.endswith("rows")}
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
