"""Redaction benchmark: recall and false-positive rate on the development corpus (tests/compliance/
redaction_corpus.yaml) and on a held-out corpus of realistic renderings (bench/data/redaction_heldout.yaml, with and
without `sensitive` slot hints), and speed.

    .venv/bin/python bench/redaction.py [--rounds 200]

Prints recall, FPR, and microseconds per line for corpus lines, plain prose without numbers, and log-like lines.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import BenchRecord  # noqa: E402
from voicebot.compliance.corpus import load_corpus, score_corpus  # noqa: E402
from voicebot.compliance.redact import Redactor  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "compliance" / "redaction_corpus.yaml"
HELD_OUT = Path(__file__).resolve().parent / "data" / "redaction_heldout.yaml"  # never used to tune the redactor
PROSE = [
    "Thank you for calling Example Bank, how can I help you today?",
    "I would like to check the balance on my savings account please.",
    "您好，请问有什么可以帮您？我想查询一下我的账单。",
]
LOG_LINES = [
    "call 7f3a2c answered from sip:+14155550123@10.0.0.1:5060 dialplan=finance node=verify",
    "webhook finance.verify 200 in 12 ms result={'verified': True}",
    "rtp stats ssrc=305419896 lost=3 jitter=1.25 packets=15000",
]


def per_line_us(redactor: Redactor, lines: list[str], rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        for line in lines:
            redactor.redact(line)
    return (time.perf_counter() - start) / (rounds * len(lines)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with BenchRecord("redaction") as record:
        redactor = Redactor()
        corpus = load_corpus(CORPUS)
        score = score_corpus(redactor, corpus)
        print(f"corpus: {score.pii_total} PII items in {len(corpus['positives'])} lines, "
              f"{score.negatives_total} negative lines, {score.keeps_total} kept substrings")
        print(f"recall {score.recall:.4f}  false-positive rate {score.false_positive_rate:.4f}  "
              f"boundary errors {len(score.boundary_errors)}")
        lines = [e["text"] for e in corpus["positives"]] + [e["text"] for e in corpus["negatives"]]
        corpus_us = per_line_us(redactor, lines, args.rounds)
        print(f"corpus lines: {corpus_us:8.1f} µs/line")
        print(f"plain prose : {per_line_us(redactor, PROSE, args.rounds * 10):8.1f} µs/line")
        print(f"log lines   : {per_line_us(redactor, LOG_LINES, args.rounds * 10):8.1f} µs/line")
        record.data.update(recall=score.recall, false_positive_rate=score.false_positive_rate,
                           corpus_us_per_line=corpus_us)
        held_out = load_corpus(HELD_OUT)
        blind = {**held_out, "positives": [{k: v for k, v in e.items() if k != "sensitive"}
                                           for e in held_out["positives"]]}
        hinted, unhinted = score_corpus(redactor, held_out), score_corpus(redactor, blind)
        print(f"held-out: {hinted.pii_total} PII items in {len(held_out['positives'])} lines, "
              f"{hinted.negatives_total} negative lines")
        print(f"held-out with sensitive hints   : recall {hinted.recall:.4f}  "
              f"false-positive rate {hinted.false_positive_rate:.4f}")
        print(f"held-out without sensitive hints: recall {unhinted.recall:.4f}")
        for miss in hinted.misses:
            print(f"  missed: {miss}")
        for false_positive in hinted.false_positives:
            print(f"  false positive: {false_positive}")
        record.data.update(heldout_recall=hinted.recall, heldout_recall_without_hints=unhinted.recall,
                           heldout_false_positive_rate=hinted.false_positive_rate)
        record.row(f"PII redaction, development corpus ({score.pii_total} items, {score.negatives_total} clean lines)",
                   f"recall {score.recall:.3f}, false positives {score.false_positive_rate:.3f}, "
                   f"{corpus_us:.0f} µs/line")
        record.row(f"PII redaction, held-out realistic corpus ({hinted.pii_total} items: ASR renderings, misheard "
                   f"digits, phones, dates of birth, names, addresses; {hinted.negatives_total} clean lines)",
                   f"recall {hinted.recall:.3f} with sensitive-slot hints, {unhinted.recall:.3f} without; "
                   f"false positives {hinted.false_positive_rate:.3f}")


if __name__ == "__main__":
    main()
