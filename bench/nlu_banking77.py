"""Banking77 benchmark for the embedded NLU: accuracy, macro-F1, train time, parse latency.

Reads ../shared/datasets/banking77/{train,test}.csv (never copied into the repo), converts train.csv to a
Rasa nlu.yml on the fly, trains the embedded engine on it exactly as `voicebot nlu train` would, and scores
test.csv through `EmbeddedNlu.parse` (classifier + entity extraction). Test data is used only for scoring.

    .venv/bin/python bench/nlu_banking77.py [--data DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from sklearn.metrics import accuracy_score, f1_score

from voicebot.nlu.engine import EmbeddedNlu

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=0, help="score only the first N test rows")
    parser.add_argument("--estimator", choices=["logreg", "linear_svm"], default="logreg")
    args = parser.parse_args()
    train_rows = read_csv(args.data / "train.csv")
    test_rows = read_csv(args.data / "test.csv")
    if args.limit:
        test_rows = test_rows[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        domain = Path(tmp) / "banking77"
        (domain / "en").mkdir(parents=True)
        (domain / "en" / "nlu.yml").write_text(to_nlu_yml(train_rows), encoding="utf-8")
        engine = EmbeddedNlu(domain, threshold=0.0, estimator=args.estimator)
        started = time.perf_counter()
        engine.model("en")
        train_seconds = time.perf_counter() - started
        predicted: list[str] = []
        latencies: list[float] = []
        for text, _ in test_rows:
            started = time.perf_counter()
            result = engine.parse(text, "en")
            latencies.append((time.perf_counter() - started) * 1000)
            predicted.append(result.ranking[0][0])
    truth = [intent for _, intent in test_rows]
    print(f"banking77 ({args.estimator}): {len(train_rows)} train / {len(test_rows)} test utterances, "
          f"{len(set(truth))} intents")
    print(f"accuracy      {accuracy_score(truth, predicted) * 100:.2f} %")
    print(f"macro-F1      {f1_score(truth, predicted, average='macro') * 100:.2f} %")
    print(f"train time    {train_seconds:.1f} s (incl. 3-fold temperature calibration)")
    print(f"parse latency p50 {percentile(latencies, 50):.2f} ms, p95 {percentile(latencies, 95):.2f} ms, "
          f"p99 {percentile(latencies, 99):.2f} ms, mean {statistics.fmean(latencies):.2f} ms")


if __name__ == "__main__":
    main()
