"""Mandarin recogniser survey: CER and decode time of one recogniser on real human speech through a G.711 line.

Each utterance of /work/shared/datasets/human-speech/aishell-S0252 (AISHELL-1 speaker S0252, 8 kHz FLAC) goes
through the phone line the server hears: 8 kHz int16 -> G.711 mu-law encode/decode (voicebot.rtp.g711) -> the
server's polyphase resampling to 16 kHz (voicebot.speech.resample). Scoring: output converted to simplified Chinese
(zhconv), punctuation and spaces removed, Latin letters upper-cased; an Arabic numeral in the output is read the way
closest to the reference (as written, as a quantity 十二, digit by digit 一二 / 幺二). CER = edits / reference chars.

Recognisers (one per process, single-threaded as one speech worker per core):
  whisper-base            voicebot.speech.asr.WhisperAsr("base"), language="zh" (what the server runs)
  whisper-base-float32    the same, weights not quantised to int8
  whisper-base-greedy     faster-whisper transcribe, greedy (the control for the three below)
  whisper-base-beam5      faster-whisper transcribe, beam_size 5
  whisper-base-prompt     greedy with a simplified-Chinese initial prompt
  whisper-base-fallback   greedy with Whisper's temperature fallback (0.0 .. 1.0)
  whisper-base-all        beam 5 + prompt + temperature fallback
  whisper-dir:PATH        WhisperAsr on another CTranslate2 Whisper model directory (e.g. a packaged small)

Run: PYTHONPATH=. .venv/bin/python bench/zh_asr_survey.py whisper-base [--every 4] [--results FILE]
Prints one JSON object (CER, p50/p95/max decode wall and CPU seconds, RSS); --results merges it into a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from voicebot.speech.normalize import digits_zh, number_to_chinese
from voicebot.speech.phoneline import through_phone_line as phone_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.* when run as a script

from bench.scoring import edit_distance  # noqa: E402

DATASET = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "human-speech" / "aishell-S0252"
LINE_RATE, ASR_RATE = 8000, 16000
ZH_PROMPT = "以下是普通话的句子。"
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
_NUMERAL = re.compile(r"\d+(?:\.\d+)?%?")
_KEEP = re.compile(r"[\u3400-\u9fff0-9A-Z]")
_FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")

Recognise = Callable[[np.ndarray], str]


@dataclass(frozen=True)
class Utterance:
    utt_id: str
    reference: str
    path: Path


def load_subset(dataset: Path, every: int, limit: int | None) -> list[Utterance]:
    """Every `every`-th utterance of transcripts.tsv (sorted by id), starting with the first."""
    rows = []
    for line in (dataset / "transcripts.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip():
            utt_id, reference = line.split("\t", 1)
            rows.append(Utterance(utt_id, reference.strip(), dataset / f"{utt_id}.flac"))
    rows.sort(key=lambda row: row.utt_id)
    subset = rows[::every]
    return subset[:limit] if limit else subset


def through_phone_line(pcm8k: np.ndarray) -> np.ndarray:
    """int16 8 kHz -> G.711 mu-law -> int16 -> the server's 16 kHz resampling (voicebot.speech.phoneline)."""
    return phone_line(pcm8k, LINE_RATE)


def read_line_audio(path: Path) -> np.ndarray:
    import soundfile

    samples, rate = soundfile.read(str(path), dtype="int16")
    if rate != LINE_RATE or samples.ndim != 1:
        raise ValueError(f"{path}: expected 8 kHz mono, got {rate} Hz with shape {samples.shape}")
    return through_phone_line(samples)


def clean(text: str) -> str:
    """Keep Hanzi, digits and upper-cased Latin letters; drop punctuation and spaces."""
    return "".join(_KEEP.findall(text.upper()))


def numeral_readings(token: str) -> list[str]:
    """Ways a numeral in the output may be read: as written, as a quantity, digit by digit."""
    percent = token.endswith("%")
    body = token.rstrip("%")
    whole, _, fraction = body.partition(".")
    quantity = number_to_chinese(int(whole)) if len(whole) <= 16 else digits_zh(whole, one_as_yao=False)
    if fraction:
        quantity += "点" + digits_zh(fraction, one_as_yao=False)
    readings = [body, quantity, digits_zh(body, one_as_yao=False), digits_zh(body, one_as_yao=True)]
    if quantity.startswith("二") and not fraction:
        readings.append("两" + quantity[1:])
    if percent:
        readings = ["百分之" + reading for reading in readings]
    return list(dict.fromkeys(readings))


def score_hypothesis(hypothesis: str, reference: str) -> tuple[int, str]:
    """(edits, scored text): simplified, cleaned, each numeral read the way closest to the reference."""
    import zhconv

    text = zhconv.convert(hypothesis, "zh-cn").translate(_FULLWIDTH)
    reference = clean(reference)
    parts = _NUMERAL.split(text)
    tokens = _NUMERAL.findall(text)
    choices = [numeral_readings(token)[0] for token in tokens]

    def assemble() -> str:
        return clean("".join(part + (choices[i] if i < len(choices) else "") for i, part in enumerate(parts)))

    for index, token in enumerate(tokens):  # coordinate descent: one numeral at a time, keeping the best reading
        best = None
        for reading in numeral_readings(token):
            choices[index] = reading
            edits = edit_distance(assemble(), reference)
            if best is None or edits < best[0]:
                best = (edits, reading)
        assert best is not None
        choices[index] = best[1]
    scored = assemble()
    return edit_distance(scored, reference), scored


def whisper_asr_recogniser(model: str, model_dir: str | None, compute_type: str = "int8") -> Recognise:
    from voicebot.speech.asr import WhisperAsr

    asr = WhisperAsr(model, compute_type=compute_type, cpu_threads=1, model_dir=model_dir)

    def recognise(pcm16k: np.ndarray) -> str:
        return asr.transcribe(pcm16k, language="zh").text

    return recognise


def transcribe_recogniser(beam_size: int, prompt: str | None, fallback: bool) -> Recognise:
    """faster-whisper's own transcribe on base with the given decoding options (Whisper-side improvements)."""
    from faster_whisper import WhisperModel

    from voicebot.speech.models import whisper_model_dir

    model = WhisperModel(str(whisper_model_dir("base", progress=False)), device="cpu", compute_type="int8",
                         cpu_threads=1, num_workers=1)
    temperature = FALLBACK_TEMPERATURES if fallback else 0.0

    def recognise(pcm16k: np.ndarray) -> str:
        audio = pcm16k.astype(np.float32) / 32768.0
        segments, _ = model.transcribe(audio, language="zh", beam_size=beam_size, initial_prompt=prompt,
                                       temperature=temperature, without_timestamps=True, vad_filter=False,
                                       condition_on_previous_text=False)
        return "".join(segment.text for segment in segments)

    recognise(np.zeros(ASR_RATE, dtype=np.int16))  # warm
    return recognise


RECOGNISERS: dict[str, Callable[[], Recognise]] = {
    "whisper-base": lambda: whisper_asr_recogniser("base", None),
    "whisper-base-float32": lambda: whisper_asr_recogniser("base", None, "float32"),
    "whisper-base-greedy": lambda: transcribe_recogniser(1, None, False),
    "whisper-base-beam5": lambda: transcribe_recogniser(5, None, False),
    "whisper-base-prompt": lambda: transcribe_recogniser(1, ZH_PROMPT, False),
    "whisper-base-fallback": lambda: transcribe_recogniser(1, None, True),
    "whisper-base-all": lambda: transcribe_recogniser(5, ZH_PROMPT, True),
}


def make_recogniser(name: str) -> Recognise:
    if name.startswith("whisper-dir:"):
        directory = name.split(":", 1)[1]
        if not Path(directory, "model.bin").is_file():
            raise FileNotFoundError(f"no CTranslate2 model.bin in {directory}")
        return whisper_asr_recogniser(Path(directory).name, directory)
    if name not in RECOGNISERS:
        raise SystemExit(f"unknown recogniser {name!r}; choose one of {', '.join(RECOGNISERS)} or whisper-dir:PATH")
    return RECOGNISERS[name]()


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(name: str, subset: list[Utterance]) -> Iterator[dict[str, object]]:
    """Load the recogniser, then yield one record per utterance; the last record is the summary."""
    started = time.perf_counter()
    recognise = make_recogniser(name)
    load_s, rss_loaded = time.perf_counter() - started, _rss_mb()
    edits = characters = 0
    times: list[float] = []
    cpu_times: list[float] = []  # process CPU seconds: the decode cost on one core, whatever the box's load
    audio_s = 0.0
    for utterance in subset:
        pcm = read_line_audio(utterance.path)
        began, began_cpu = time.perf_counter(), time.process_time()
        hypothesis = recognise(pcm)
        elapsed, cpu = time.perf_counter() - began, time.process_time() - began_cpu
        errors, scored = score_hypothesis(hypothesis, utterance.reference)
        reference_chars = len(clean(utterance.reference))
        edits, characters = edits + errors, characters + reference_chars
        times.append(elapsed)
        cpu_times.append(cpu)
        audio_s += pcm.size / ASR_RATE
        yield {"id": utterance.utt_id, "ref": utterance.reference, "hyp": hypothesis, "scored": scored,
               "edits": errors, "chars": reference_chars, "decode_s": round(elapsed, 3), "cpu_s": round(cpu, 3)}
    yield {
        "recogniser": name, "utterances": len(subset), "reference_chars": characters, "edits": edits,
        "cer_percent": round(100 * edits / max(characters, 1), 2),
        "decode_p50_s": round(statistics.median(times), 3), "decode_p95_s": round(_percentile(times, 0.95), 3),
        "decode_max_s": round(max(times), 3), "decode_mean_s": round(statistics.fmean(times), 3),
        "cpu_p50_s": round(statistics.median(cpu_times), 3), "cpu_p95_s": round(_percentile(cpu_times, 0.95), 3),
        "cpu_max_s": round(max(cpu_times), 3), "audio_mean_s": round(audio_s / len(subset), 2),
        "rtf": round(sum(times) / audio_s, 3), "load_s": round(load_s, 2),
        "rss_loaded_mb": round(rss_loaded, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recogniser")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--every", type=int, default=4, help="take every N-th utterance (default 4: 125 of 500)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many utterances")
    parser.add_argument("--results", type=Path, default=None, help="merge this run into a JSON results file")
    parser.add_argument("--verbose", action="store_true", help="print each utterance as it is recognised")
    args = parser.parse_args()
    if args.every < 1:
        parser.error("--every must be >= 1")
    subset = load_subset(args.dataset.resolve(), args.every, args.limit)
    load_before = os.getloadavg()
    when = datetime.now(UTC).isoformat(timespec="seconds")
    records = []
    for record in run(args.recogniser, subset):  # --verbose streams each utterance: a cut-short run still tells
        records.append(record)
        if args.verbose and "id" in record:
            print(json.dumps(record, ensure_ascii=False), flush=True)
    summary = records[-1]
    summary.update({
        "every": args.every, "date": when, "commit": _git_commit(), "cores": os.cpu_count(), "machine": platform.machine(),
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
        "command": "PYTHONPATH=. python " + " ".join(["bench/zh_asr_survey.py", *sys.argv[1:]]),
    })
    print(json.dumps(summary, ensure_ascii=False))
    if args.results:
        existing = json.loads(args.results.read_text(encoding="utf-8")) if args.results.is_file() else {"runs": {}}
        existing["runs"][f"{args.recogniser} every {args.every}"] = {"summary": summary, "utterances": records[:-1]}
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(existing, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
