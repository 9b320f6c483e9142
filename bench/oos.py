"""Out-of-scope requests at the industry dialplans' first menus: how many are routed to the nomatch path (or a person)
rather than answered with an in-scope intent, at the dialplan's threshold and at a calibrated one.

The held-out set is bench/data/oos_heldout.yaml (written for this benchmark; none of it is NLU training data):
per industry and language, requests the first menu does not cover — most next to a covered intent — and new
wordings of the menu's own intents. Each is classified by the dialplan's trained NLU and routed the way the
interpreter routes a menu answer: a menu intent at >= the listen's `min_confidence`; a global intent at >= the
larger of that and `global.min_confidence`; anything else is a nomatch. An out-of-scope request answered with a menu
intent or a global one other than `agent` is "misrouted"; an in-scope request is "kept" when it reaches its intent.

Calibration (per dialplan, both languages together: one listen serves both): the listen threshold from 0 to 0.95
(step 0.05) that maximises kept in-scope minus misrouted out-of-scope, losing at most one in-scope request in 16
against the dialplan's own threshold. It is chosen on this same set, so its figure is optimistic.

    .venv/bin/python bench/oos.py            # ~1-2 min (trains each domain's NLU once per language)
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.results import BenchRecord  # noqa: E402
from voicebot.dialplan.loader import load_dialplan  # noqa: E402
from voicebot.dialplan.schema import Dialplan  # noqa: E402
from voicebot.nlu.base import load_nlu  # noqa: E402

DATA = REPO / "bench" / "data" / "oos_heldout.yaml"
THRESHOLDS = [round(i * 0.05, 2) for i in range(20)]
MAX_KEPT_LOSS = 1 / 16


@dataclass(frozen=True)
class Reading:
    """One held-out request as the NLU read it."""

    lang: str
    text: str
    intent: str | None
    confidence: float
    expected: str | None  # None: out of scope


def route(plan: Dialplan, menu: str, reading: Reading, threshold: float) -> str | None:
    """Where the menu sends this reading at listen threshold `threshold` (None: the nomatch path)."""
    node = plan.nodes[menu]
    assert node.listen is not None
    if reading.intent is None or reading.confidence < threshold:
        return None
    if reading.intent in node.listen.intents:
        return reading.intent
    if reading.intent in plan.global_.intents and reading.confidence >= plan.global_.min_confidence:
        return reading.intent
    return None


def rates(plan: Dialplan, menu: str, readings: list[Reading], threshold: float) -> tuple[float, float]:
    """(share of out-of-scope requests misrouted, share of in-scope requests kept) at `threshold`."""
    oos = [r for r in readings if r.expected is None]
    known = [r for r in readings if r.expected is not None]
    misrouted = sum(1 for r in oos if route(plan, menu, r, threshold) not in (None, "agent"))
    kept = sum(1 for r in known if route(plan, menu, r, threshold) == r.expected)
    return misrouted / max(1, len(oos)), kept / max(1, len(known))


def calibrate(plan: Dialplan, menu: str, readings: list[Reading], default: float) -> float:
    """The threshold with the best kept - misrouted, keeping at most MAX_KEPT_LOSS fewer in-scope than `default`."""
    _, kept_default = rates(plan, menu, readings, default)
    best, best_score = default, None
    for threshold in THRESHOLDS:
        misrouted, kept = rates(plan, menu, readings, threshold)
        if kept < kept_default - MAX_KEPT_LOSS - 1e-9:
            continue
        score = kept - misrouted
        if best_score is None or score > best_score + 1e-9:
            best, best_score = threshold, score
    return best


def read(plan: Dialplan, section: dict) -> list[Reading]:
    nlu = load_nlu(REPO / "nlu_models" / str(plan.nlu))
    readings = []
    for lang in ("en", "zh"):
        items = [(text, None) for text in section[lang]["out_of_scope"]]
        items += [(item["text"], item["intent"]) for item in section[lang]["in_scope"]]
        for text, expected in items:
            result = nlu.parse(str(text), lang)
            readings.append(Reading(lang, str(text), result.intent, result.confidence, expected))
    return readings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--only", help="one industry, e.g. finance")
    args = parser.parse_args()
    data = yaml.safe_load(args.data.read_text(encoding="utf-8"))
    with BenchRecord("oos") as record:
        totals = {"default": [0.0, 0.0], "calibrated": [0.0, 0.0]}
        for industry, section in data.items():
            if args.only and industry != args.only:
                continue
            plan = load_dialplan(REPO / "dialplans" / f"{industry}.yaml")
            menu = section["menu"]
            listen = plan.nodes[menu].listen
            assert listen is not None, f"{industry}: {menu} is not a listen"
            readings = read(plan, section)
            default = listen.min_confidence
            chosen = calibrate(plan, menu, readings, default)
            entry: dict[str, object] = {"menu": menu, "default_threshold": default, "calibrated_threshold": chosen}
            for lang in ("en", "zh"):
                mine = [r for r in readings if r.lang == lang]
                for label, threshold in (("default", default), ("calibrated", chosen)):
                    misrouted, kept = rates(plan, menu, mine, threshold)
                    entry[f"{lang}_{label}"] = {"oos_misrouted": round(misrouted, 3), "in_scope_kept": round(kept, 3)}
                    print(f"{industry:10s} {lang}  {label:10s} threshold {threshold:.2f}: out-of-scope misrouted "
                          f"{misrouted:6.1%}, in-scope kept {kept:6.1%}  (n={len(mine)})")
                wrong = [f"{r.text!r} -> {r.intent} {r.confidence:.2f}" for r in mine
                         if r.expected is None and route(plan, menu, r, chosen) not in (None, "agent")]
                if wrong:
                    print(f"           still misrouted at {chosen:.2f}: " + "; ".join(wrong))
            for label, threshold in (("default", default), ("calibrated", chosen)):
                misrouted, kept = rates(plan, menu, readings, threshold)
                totals[label][0] += misrouted
                totals[label][1] += kept
            record.data[industry] = entry
        count = len(record.data)
        for label, (misrouted, kept) in totals.items():
            print(f"mean over {count} dialplans, {label}: out-of-scope misrouted {misrouted / count:.1%}, "
                  f"in-scope kept {kept / count:.1%}")
            record.data[f"mean_{label}"] = {"oos_misrouted": round(misrouted / count, 3),
                                            "in_scope_kept": round(kept / count, 3)}


if __name__ == "__main__":
    main()
