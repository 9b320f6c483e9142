"""`voicebot nlu train|eval|add <domain_dir>`: train the embedded NLU with a progress bar, cross-validate it, or add
labelled examples (the improvement loop: utterances the bot did not understand, labelled by an author).

Wire into the main CLI with `register(subparsers)` (handlers are set as `func`, returning an exit code);
`main(argv)` runs it stand-alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from tqdm import tqdm

from voicebot.nlu.base import NluError
from voicebot.nlu.classifier import ClassifierConfig, TrainingError, train
from voicebot.nlu.engine import check_entity_types, load_language
from voicebot.nlu.rasa_data import load_nlu_data
from voicebot.yamlsrc import YamlSourceError

__all__ = ["EvalReport", "cross_validate", "main", "register"]


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the `nlu` command (train, eval) to a parent parser's subparsers."""
    nlu = subparsers.add_parser("nlu", help="train or evaluate the embedded NLU of a domain")
    commands = nlu.add_subparsers(dest="nlu_command", required=True)
    train_cmd = commands.add_parser("train", help="train every language of nlu_models/<domain>")
    train_cmd.add_argument("domain_dir", type=Path)
    train_cmd.add_argument("--force", action="store_true", help="retrain even when the cached model is current")
    train_cmd.set_defaults(func=_train_command)
    eval_cmd = commands.add_parser("eval", help="k-fold cross-validation: accuracy, macro-F1, confusions")
    eval_cmd.add_argument("domain_dir", type=Path)
    eval_cmd.add_argument("--folds", type=int, default=5)
    eval_cmd.add_argument("--lang", help="only this language (default: all)")
    eval_cmd.set_defaults(func=_eval_command)
    add_cmd = commands.add_parser("add", help="add labelled examples to nlu_models/<domain>/<lang>/nlu.yml")
    add_cmd.add_argument("domain_dir", type=Path)
    add_cmd.add_argument("--lang", required=True, help="en or zh")
    add_cmd.add_argument("--intent", required=True)
    add_cmd.add_argument("examples", nargs="*", help="example utterances, right after the domain (or --from-file)")
    add_cmd.add_argument("--from-file", type=Path, help="one example per line")
    add_cmd.set_defaults(func=_add_command)
    return nlu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voicebot")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def _add_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Append examples to one language's nlu.yml (comments and layout kept; re-parsed before it is written)."""
    from voicebot.nlu.edit import add_examples

    out = out or sys.stdout
    path = args.domain_dir / args.lang / "nlu.yml"
    examples = list(args.examples)
    if args.from_file is not None:
        examples += [line for line in args.from_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not examples:
        print("voicebot nlu add: give examples, or --from-file", file=sys.stderr)
        return 2
    try:
        result = add_examples(path.read_text(encoding="utf-8"), args.intent, examples, label=str(path))
    except FileNotFoundError:
        print(f"voicebot nlu add: {path} does not exist", file=sys.stderr)
        return 2
    except (ValueError, YamlSourceError) as exc:
        print(f"voicebot nlu add: {exc}", file=sys.stderr)
        return 2
    if result.added:
        temporary = path.with_suffix(".yml.tmp")
        temporary.write_text(result.text, encoding="utf-8")
        temporary.replace(path)
    print(f"{path}: {len(result.added)} example(s) added to {args.intent}"
          + (f", {len(result.skipped)} already there" if result.skipped else "")
          + (f" — check with: voicebot nlu eval {args.domain_dir} --lang {args.lang}" if result.added else ""),
          file=out)
    return 0


def _languages(domain_dir: Path, only: str | None = None) -> list[Path]:
    if not domain_dir.is_dir():
        raise NluError(f"{domain_dir}: not a directory (expected nlu_models/<domain>)")
    dirs = sorted(p.parent for p in domain_dir.glob("*/nlu.yml"))
    if only is not None:
        dirs = [d for d in dirs if d.name == only]
    if not dirs:
        wanted = f"{only}/nlu.yml" if only else "<lang>/nlu.yml"
        raise NluError(f"{domain_dir}: no {wanted} found")
    return dirs


def _train_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        for lang_dir in _languages(args.domain_dir):
            started = time.perf_counter()
            folds = ClassifierConfig().calibration_folds
            with tqdm(total=folds + 1, desc=f"{lang_dir.name}", unit="step", file=sys.stderr) as bar:
                def step(name: str) -> None:
                    bar.set_postfix_str(name)
                    bar.update(1)

                model = load_language(lang_dir, progress=step, force=args.force)
                bar.update(bar.total - bar.n)
            state = "trained" if model.trained_now else "up to date"
            print(
                f"{lang_dir.name}: {state} — {len(model.data.examples)} examples, "
                f"{len(model.classifier.intents)} intents, {time.perf_counter() - started:.2f} s",
                file=out,
            )
    except (NluError, YamlSourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


@dataclass(frozen=True)
class EvalReport:
    lang: str
    examples: int
    accuracy: float
    macro_f1: float
    confusions: list[tuple[str, str, int]]  # (true intent, predicted intent, count), most frequent first


def cross_validate(texts: list[str], labels: list[str], lang: str, folds: int) -> EvalReport:
    """Stratified k-fold accuracy, macro-F1 and confusion pairs of the embedded classifier."""
    smallest = min(Counter(labels).values())
    folds = min(folds, smallest)
    if folds < 2:
        raise NluError(f"every intent needs at least 2 examples for cross-validation (smallest has {smallest})")
    predicted = [""] * len(texts)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    config = ClassifierConfig(lang=lang, calibration_folds=0)
    for train_rows, test_rows in tqdm(
        list(splitter.split(texts, labels)), desc=f"{lang} folds", unit="fold", file=sys.stderr
    ):
        model = train([(texts[i], labels[i]) for i in train_rows], config)
        probs = model.probabilities([texts[i] for i in test_rows])
        for row, best in zip(test_rows, np.argmax(probs, axis=1)):
            predicted[row] = model.labels[best]
    pairs = Counter((t, p) for t, p in zip(labels, predicted) if t != p)
    return EvalReport(
        lang, len(texts), float(accuracy_score(labels, predicted)),
        float(f1_score(labels, predicted, average="macro")), [(t, p, n) for (t, p), n in pairs.most_common()],
    )


def _eval_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if args.folds < 2:
        print("error: --folds must be at least 2", file=sys.stderr)
        return 2
    try:
        for lang_dir in _languages(args.domain_dir, args.lang):
            data = load_nlu_data(lang_dir / "nlu.yml")
            check_entity_types(data)
            texts = [e.text for e in data.examples]
            labels = [e.intent for e in data.examples]
            report = cross_validate(texts, labels, lang_dir.name, args.folds)
            print(
                f"{report.lang}: {report.examples} examples, {len(set(labels))} intents, {args.folds}-fold — "
                f"accuracy {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f}",
                file=out,
            )
            if report.confusions:
                print("  top confusions (true -> predicted: count):", file=out)
                for true, pred, count in report.confusions[:5]:
                    print(f"    {true} -> {pred}: {count}", file=out)
            else:
                print("  no confusions", file=out)
    except (NluError, YamlSourceError, TrainingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
