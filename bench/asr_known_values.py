"""Known values in the digits grammar (issue 13): a caller's own numbers, held by the call, heard from real people.

When the bot already holds the numbers a caller is likely to say (order or account numbers a webhook found by the
caller's number: `ask.candidates`), the digits grammar carries them (`Grammar.known`) and the recogniser prefers
them over a near-miss decode. Measured on the FSDD speakers (English digit strings, as bench/asr_human.py builds
them) and AISHELL S0252's digit strings (Mandarin), through G.711, each string recognised with:
- the plain digits grammar of its length;
- known values N = 1, 3, 10 with the true value among them; the others are the caller's other numbers, half near
  (1-2 digits differ: sequential order numbers) and half random;
- N = 3 known values none of which is the true one (the first differs from it in one digit): the fallback to the
  plain grammar must not force a known value on a number the bot did not know.
Score: exact value, wrong value (a value other than the truth: the dangerous outcome), nomatch (asked again), and
the wall time per recognition.

Run: PYTHONPATH=. .venv/bin/python bench/asr_known_values.py [--per-speaker 20] [--skip zh] [--one-encoding]
Human sets: ../shared/datasets/human-speech, or HUMAN_SPEECH_DIR. Results: bench/results/asr_known_values.json (_en/_zh: one language).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.* when run as a script

from bench.asr_human import (  # noqa: E402
    HUMAN,
    SPEAKERS,
    ZH_DIGIT_STRING,
    Heard,
    Recogniser,
    fsdd_clip,
    slot_digits,
    whisper,
)
from bench.results import BenchRecord  # noqa: E402
from voicebot.speech.grammar import digits_from_text, digits_grammar  # noqa: E402
from voicebot.speech.phoneline import join_with_pauses, through_phone_line  # noqa: E402

SIZES = (1, 3, 10)


def near(value: str, rng: random.Random, changes: int) -> str:
    """`value` with `changes` digits replaced by other digits."""
    digits = list(value)
    for position in rng.sample(range(len(digits)), min(changes, len(digits))):
        digits[position] = rng.choice([d for d in "0123456789" if d != digits[position]])
    return "".join(digits)


def others(value: str, count: int, rng: random.Random) -> list[str]:
    """The caller's other numbers: alternately near (1-2 digits differ) and random, all distinct from `value`."""
    out: list[str] = []
    while len(out) < count:
        other = near(value, rng, rng.randint(1, 2)) if len(out) % 2 == 0 else \
            "".join(rng.choice("0123456789") for _ in value)
        if other != value and other not in out:
            out.append(other)
    return out


def conditions(value: str, rng: random.Random) -> dict[str, tuple[str, ...]]:
    """Name -> known values for one string (the true value placed at a random position)."""
    pool = others(value, max(SIZES) - 1, rng)
    out: dict[str, tuple[str, ...]] = {"plain": ()}
    for size in SIZES:
        values = [value, *pool[:size - 1]]
        rng.shuffle(values)
        out[f"known_{size}"] = tuple(values)
    out["absent_3"] = (near(value, rng, 1), *others(value, 2, rng)[1:], "".join(rng.choice("0123456789")
                                                                              for _ in value))
    return out


def score(rows: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in names:
        got = [(row["digits"], row[name]["value"]) for row in rows]
        n = len(got)
        exact = sum(value == truth for truth, value in got)
        nomatch = sum(value is None for _, value in got)
        summary[name] = {"strings": n, "exact": exact, "exact_pct": round(100 * exact / max(1, n), 1),
                         "wrong_value": n - exact - nomatch, "nomatch": nomatch,
                         "decode_s_mean": round(sum(row[name]["s"] for row in rows) / max(1, n), 3)}
    return summary


def one_encoding(model: str = "base") -> Recogniser:
    """The recogniser's grammar step on an encoding made once per utterance (`--one-encoding`, for a loaded box).

    Per turn the server encodes the utterance, then runs the grammar (WhisperAsr.transcribe): the encoding does not
    depend on the grammar, so the conditions of one string share it here. The window is the server's (English 10 s
    when the audio fits, redone on 30 s when that decode is no value; Mandarin 30 s); the free decode a miss falls
    back to is not run (a miss counts as a nomatch), and decode_s is the grammar step alone."""
    import time

    from faster_whisper.tokenizer import Tokenizer

    from voicebot.speech.asr import WhisperAsr, _as_float_audio, _pad_with_silence
    from voicebot.speech.grammar_decode import match_grammar

    asr = WhisperAsr(model)
    whisper_model = asr._model
    encoded: dict[tuple[bytes, int], Any] = {}

    def encode(audio: Any, frames: int) -> Any:
        key = (audio.tobytes(), frames)  # the samples, not id(): a freed array's id is reused by the next one
        if key not in encoded:
            encoded.clear()
            features = whisper_model.feature_extractor(_as_float_audio(audio))
            encoded[key] = whisper_model.encode(_pad_with_silence(features[..., :frames], frames))
        return encoded[key]

    def recognise(audio: Any, lang: str, grammar: Any) -> Heard:
        started = time.perf_counter()
        hop = whisper_model.feature_extractor.hop_length
        full = whisper_model.feature_extractor.nb_max_frames
        short = int(asr.window_s * 16000) // hop
        tokenizer = Tokenizer(whisper_model.hf_tokenizer, True, task="transcribe", language=lang)
        windows = [short, full] if lang == "en" and audio.size <= (asr.window_s - 0.5) * 16000 else [full]
        match = None
        for frames in windows:
            output = encode(audio, frames)
            started = time.perf_counter() if frames == windows[0] else started
            match = match_grammar(whisper_model.model, output, tokenizer, grammar, min(frames, audio.size // hop))
            if match is not None and match.value is not None:
                break
        if match is None or match.runaway:
            return Heard("", None, time.perf_counter() - started, False)
        return Heard(match.text, match.value, time.perf_counter() - started, True)

    return recognise


def measure(recognise: Recogniser, audio: Any, lang: str, digits: str, rng: random.Random) -> dict[str, Any]:
    row: dict[str, Any] = {"digits": digits}
    for name, known in conditions(digits, rng).items():
        heard: Heard = recognise(audio, lang, digits_grammar(length=len(digits), known=known))
        row[name] = {"known": list(known), "text": heard.text, "value": slot_digits(heard, len(digits)),
                     "s": round(heard.decode_s, 3)}
    print(f"{lang} {digits:16} " + " ".join(f"{name}={row[name]['value']}" for name in row if name != "digits"),
          file=sys.stderr, flush=True)
    return row


def english(recognise: Recogniser, per_speaker: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for speaker in SPEAKERS:
        for _ in range(per_speaker):
            digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 16)))
            clips = [fsdd_clip(speaker, d, rng.randrange(50)) for d in digits]
            audio = through_phone_line(join_with_pauses(clips, 8000, rng), 8000)
            rows.append({"speaker": speaker, **measure(recognise, audio, "en", digits, rng)})
    return rows


def mandarin(recognise: Recogniser, seed: int) -> list[dict[str, Any]]:
    import soundfile

    rng = random.Random(seed)
    rows = []
    for line in (HUMAN / "aishell-S0252" / "transcripts.tsv").open(encoding="utf-8"):
        uid, ref = line.rstrip("\n").split("\t")
        if not ZH_DIGIT_STRING.fullmatch(ref):
            continue
        pcm, rate = soundfile.read(str(HUMAN / "aishell-S0252" / f"{uid}.flac"), dtype="int16")
        rows.append({"id": uid, **measure(recognise, through_phone_line(pcm, rate), "zh", digits_from_text(ref), rng)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-speaker", type=int, default=20, help="English digit strings per FSDD speaker")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--skip", choices=("en", "zh"), action="append", default=[])
    parser.add_argument("--one-encoding", action="store_true",
                        help="encode each utterance once for all its conditions (see one_encoding)")
    args = parser.parse_args()
    if args.per_speaker < 1:
        parser.error("--per-speaker must be >= 1")
    names = ["plain", *(f"known_{size}" for size in SIZES), "absent_3"]
    name = "asr_known_values" + "".join(f"_{lang}" for lang in ("en", "zh") if args.skip and lang not in args.skip)
    with BenchRecord(name) as record:
        recognise = one_encoding("base") if args.one_encoding else whisper("base")
        record.data["note"] = f"2 cores shared with other engineers' work (load {os.getloadavg()[0]:.1f} at start)"
        for lang, rows in (("en", None), ("zh", None)):
            if lang in args.skip:
                continue
            rows = english(recognise, args.per_speaker, args.seed) if lang == "en" else mandarin(recognise, args.seed)
            summary = score(rows, names)
            record.data[lang] = {"summary": summary, "rows": rows}
            for name in names:
                s = summary[name]
                print(f"{lang} {name:9} exact {s['exact']}/{s['strings']} ({s['exact_pct']} %) wrong {s['wrong_value']}"
                      f" nomatch {s['nomatch']} decode {s['decode_s_mean']} s")
            label = "English" if lang == "en" else "Mandarin"
            record.row(f"{label} digit strings (human), the true value among 3 known values: exact",
                       f"{summary['known_3']['exact_pct']} % (plain grammar {summary['plain']['exact_pct']} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
