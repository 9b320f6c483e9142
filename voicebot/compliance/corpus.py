"""Score a Redactor against a labelled corpus (tests/compliance/redaction_corpus.yaml): recall and false positives.

Corpus shape:
    positives: [{kind, text, pii: [substrings that must disappear], keep: [substrings that must survive],
                 sensitive: [slot values passed to the redactor]}]
    negatives: [{text}]            # must come out unchanged

recall = PII substrings removed / PII substrings; a PII item counts as removed when neither the substring nor its
digit sequence survives; `boundary_errors` lists positives whose masks do not cover exactly the PII (a digit
word left over, a neighbouring word eaten). false-positive rate = (changed negatives + lost keep-substrings) / (negatives + keeps).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from voicebot.compliance.redact import Redactor

__all__ = ["CorpusScore", "load_corpus", "score_corpus"]


@dataclass
class CorpusScore:
    pii_total: int = 0
    pii_removed: int = 0
    negatives_total: int = 0
    negatives_changed: int = 0
    keeps_total: int = 0
    keeps_lost: int = 0
    misses: list[str] = field(default_factory=list)
    boundary_errors: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.pii_removed / self.pii_total if self.pii_total else 1.0

    @property
    def false_positive_rate(self) -> float:
        checked = self.negatives_total + self.keeps_total
        return (self.negatives_changed + self.keeps_lost) / checked if checked else 0.0


def load_corpus(path: str | Path) -> dict[str, Any]:
    """Read the corpus YAML; raise ValueError naming the problem when its shape is wrong."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("positives"), list) or not isinstance(
        data.get("negatives"), list
    ):
        raise ValueError(f"{path}: a corpus needs 'positives:' and 'negatives:' lists")
    for index, entry in enumerate(data["positives"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str) or not entry.get("pii"):
            raise ValueError(f"{path}: positives[{index}] needs text and a non-empty pii list")
        for item in entry["pii"]:
            if item not in entry["text"]:
                raise ValueError(f"{path}: positives[{index}]: pii {item!r} does not occur in its text")
    return data


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def score_corpus(redactor: Redactor, corpus: dict[str, Any]) -> CorpusScore:
    score = CorpusScore()
    for entry in corpus["positives"]:
        out = redactor.redact(entry["text"], entry.get("sensitive", ()))
        out_digits = _digits(out)
        for item in entry["pii"]:
            score.pii_total += 1
            digits = _digits(item)
            leaked = item in out or (len(digits) >= 4 and digits in out_digits and not _card_tail(item, out))
            if leaked:
                score.misses.append(f"{entry['text']!r} -> {out!r} (kept {item!r})")
            else:
                score.pii_removed += 1
        expected_rest = entry["text"]
        for item in entry["pii"]:
            expected_rest = expected_rest.replace(item, "\0")
        if _LABEL.sub("\0", out) != expected_rest:
            score.boundary_errors.append(f"{entry['text']!r} -> {out!r}")
        for item in entry.get("keep", ()):
            score.keeps_total += 1
            if item not in out:
                score.keeps_lost += 1
                score.false_positives.append(f"{entry['text']!r} -> {out!r} (lost {item!r})")
    for entry in corpus["negatives"]:
        score.negatives_total += 1
        out = redactor.redact(entry["text"])
        if out != entry["text"]:
            score.negatives_changed += 1
            score.false_positives.append(f"{entry['text']!r} -> {out!r}")
    return score


_LABEL = re.compile(r"\[(?:CARD[^\]]*|CN_ID|SSN|PHONE|EMAIL|NUMBER|DOB|DIGITS \d+|REDACTED)\]")


def _card_tail(item: str, out: str) -> bool:
    """A four-digit PII item equal to a kept card tail ("****1234") is not a leak of that item."""
    digits = _digits(item)
    return len(digits) == 4 and f"****{digits}" in out
