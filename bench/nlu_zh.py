"""Chinese intent benchmark for the embedded NLU: accuracy, macro-F1, train time, parse latency.

The set is our own zh training data, pooled over every domain (nlu_models/*/zh/nlu.yml): intents with the same
name (greet, agent, goodbye, ...) are merged, exact duplicate texts are kept once (a text labelled with two
different intents is dropped), then a fixed stratified split (seed 0) holds out `--test-share` of each intent
for scoring. Training and scoring go through `EmbeddedNlu` exactly as in bench/nlu_banking77.py.

    .venv/bin/python bench/nlu_zh.py [--test-share 0.3] [--variants tfidf,use-multilingual]   # ~1 min
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from nlu_banking77 import print_row, score, variant_embedding, variant_label, variants_figure
from sklearn.model_selection import train_test_split

from bench.results import BenchRecord
from voicebot.nlu.rasa_data import load_nlu_data

NLU_MODELS = Path(__file__).resolve().parents[1] / "nlu_models"


def pooled_examples(root: Path, lang: str) -> list[tuple[str, str]]:
    """(text, intent) over all domains, each text once; texts with conflicting intents are left out."""
    intents_of: dict[str, set[str]] = defaultdict(set)
    for path in sorted(root.glob(f"*/{lang}/nlu.yml")):
        for example in load_nlu_data(path).examples:
            intents_of[example.text.strip()].add(example.intent)
    return sorted((text, next(iter(intents))) for text, intents in intents_of.items() if len(intents) == 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=NLU_MODELS, help="directory of <domain>/zh/nlu.yml")
    parser.add_argument("--test-share", type=float, default=0.3)
    parser.add_argument("--estimator", choices=["logreg", "linear_svm"], default="logreg")
    parser.add_argument("--variants", default="tfidf,use-multilingual")
    args = parser.parse_args()
    with BenchRecord("nlu_zh") as record:
        rows = pooled_examples(args.data, "zh")
        if not rows:
            raise SystemExit(f"no zh training data under {args.data}")
        train_rows, test_rows = train_test_split(
            rows, test_size=args.test_share, stratify=[intent for _, intent in rows], random_state=0
        )
        intents = len({intent for _, intent in rows})
        print(f"zh intents ({args.estimator}): {len(train_rows)} train / {len(test_rows)} test utterances, "
              f"{intents} intents pooled from {args.data}/*/zh/nlu.yml, stratified split seed 0")
        figures: dict[str, dict[str, float]] = {}
        for variant in args.variants.split(","):
            name = "tfidf" if variant == "tfidf" else f"tfidf+{variant}"
            figures[variant] = score("zh", train_rows, test_rows, args.estimator, variant_embedding(variant))
            print_row(name, figures[variant])
        record.data.update(train=len(train_rows), test=len(test_rows), intents=intents, variants=figures)
        labels = " / ".join(variant_label(variant) for variant in figures)
        record.row(f"NLU Chinese set ({intents} intents from our zh data, {len(test_rows)} held-out utterances): "
                   f"{labels}", variants_figure(figures))

if __name__ == "__main__":
    main()
