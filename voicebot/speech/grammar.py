"""What a listen expects to hear (DESIGN.md principle 7): digits of a length, yes/no, options, known values, patterns.

Pure, picklable frozen dataclasses: a `Grammar` travels from the call session to the speech worker processes, where
the recogniser scores it on the utterance's one encoder pass (voicebot.speech.asr) before any free decode.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from voicebot.nlu.numbers import ZH_DIGIT_NAMES, ZH_SPOKEN_DIGITS

GrammarKind = Literal["digits", "yes_no", "choice", "pattern"]

MAX_DIGITS = 64
DEFAULT_MAX_DIGITS = 20  # a digits ask without a length: longer is a runaway decode, not an answer

# Closed-set phrasings of yes and no, both languages (the recogniser scores each; the best of a value counts).
YES_PHRASES = ("yes", "yeah", "yep", "yes please", "correct", "that's right", "right", "sure", "okay",
               "是", "是的", "对", "对的", "好", "好的", "没错", "可以")
NO_PHRASES = ("no", "nope", "no thanks", "no thank you", "wrong", "that's wrong", "incorrect",
              "不", "不是", "不对", "不要", "错了", "没有")

# Mandarin digits read one by one (幺 for 1 on the phone, 两 for 2, 〇/零/洞 for 0): the shared table.
ZH_DIGITS = ZH_SPOKEN_DIGITS


@dataclass(frozen=True)
class Grammar:
    """One listen's expected answers.

    digits: `min_digits`..`max_digits` digits (equal for an exact length). yes_no/choice: `options` maps each value
    ("yes"/"no", an option name, a known value) to the phrases that say it, in any language. pattern: a regular
    expression over the spoken letters and digits, e.g. "[A-Z]{2}[0-9]{3,4}" (flight CA981), plus optional known
    values in `options`.
    """

    kind: GrammarKind
    min_digits: int = 1
    max_digits: int = DEFAULT_MAX_DIGITS
    options: tuple[tuple[str, tuple[str, ...]], ...] = ()
    pattern: str | None = None
    known: tuple[str, ...] = ()  # digits: values this caller likely says (their order/account numbers), tried first

    def __post_init__(self) -> None:
        if self.kind not in ("digits", "yes_no", "choice", "pattern"):
            raise ValueError(f"unknown grammar kind {self.kind!r}; use digits, yes_no, choice or pattern")
        if not 1 <= self.min_digits <= self.max_digits <= MAX_DIGITS:
            raise ValueError(f"digit lengths must satisfy 1 <= min ({self.min_digits}) <= max ({self.max_digits})"
                             f" <= {MAX_DIGITS}")
        if self.kind in ("yes_no", "choice") and not self.options:
            raise ValueError(f"a {self.kind} grammar needs options")
        if self.kind == "pattern":
            if not self.pattern:
                raise ValueError("a pattern grammar needs a regular expression")
            re.compile(self.pattern)
        for value in self.known:
            if self.kind != "digits" or not self.accepts_digits(value):
                raise ValueError(f"known value {value!r} is not an answer of this {self.kind} grammar")

    def accepts_digits(self, digits: str) -> bool:
        """A digit string of an allowed length (a wrong length is a nomatch, never truncated to fit)."""
        return digits.isascii() and digits.isdigit() and self.min_digits <= len(digits) <= self.max_digits

    def accepts_pattern(self, text: str) -> bool:
        return self.pattern is not None and re.fullmatch(self.pattern, text) is not None

    @property
    def closed(self) -> bool:
        """Answers are a closed set of phrases (scored one by one rather than decoded)."""
        return self.kind in ("yes_no", "choice") or (self.kind == "pattern" and bool(self.options))


def digits_grammar(length: int | None = None, min_length: int | None = None,
                   max_length: int | None = None, known: Iterable[str] = ()) -> Grammar:
    """Digits of an exact length or a range; `known` values (spaces and dashes dropped) that fit are candidates."""
    if length is not None:
        low, high = length, length
    else:
        low = min_length or 1
        high = max_length or max(low, DEFAULT_MAX_DIGITS)
    fits = Grammar("digits", min_digits=low, max_digits=high)
    values = (_SPACING.sub("", str(value)) for value in known)
    return Grammar("digits", min_digits=low, max_digits=high,
                   known=tuple(dict.fromkeys(v for v in values if fits.accepts_digits(v))))


_SPACING = re.compile(r"[\s\-]+")


def yes_no_grammar() -> Grammar:
    return Grammar("yes_no", options=(("yes", YES_PHRASES), ("no", NO_PHRASES)))


def choice_grammar(options: Mapping[str, Iterable[str]]) -> Grammar:
    """Each option is said by its own name and its phrases."""
    entries = []
    for name, phrases in options.items():
        said = tuple(dict.fromkeys([name.replace("_", " "), *phrases]))
        entries.append((name, said))
    return Grammar("choice", options=tuple(entries))


def grammar_for_ask(ask: Any, known_values: Iterable[str] = ()) -> Grammar | None:
    """The grammar of a dialplan ask (voicebot.dialplan.schema.AskSpec), or None for free answers.

    known_values: values this caller may well say (order ids from a webhook result, the last four digits of a
    card); for a digits ask they are the grammar's known values, for a pattern ask closed-set candidates. Each
    slot type builds its own grammar with the functions here (voicebot.dialplan.slot_types)."""
    from voicebot.dialplan import slot_types  # the types build their grammars from this module

    kind = slot_types.find(getattr(ask, "type", None))
    return None if kind is None else kind.grammar(ask, known_values)


def spoken_forms(value: str) -> tuple[str, ...]:
    """How a caller says a code like "CA981": "C A 9 8 1", and its digits in Mandarin (国航 is the caller's own)."""
    chars = [c for c in value.upper() if c.isalnum()]
    spaced = " ".join(chars)
    zh = "".join(ZH_DIGIT_NAMES[int(c)] if c in "0123456789" else c for c in chars)
    return tuple(dict.fromkeys([value, spaced, zh]))


def digits_from_text(text: str) -> str:
    """The digits in a recognised text, Mandarin digit characters included ('幺二三' -> '123')."""
    return "".join(ZH_DIGITS.get(c, c) for c in text if c.isdigit() or c in ZH_DIGITS).translate(_ASCII_DIGITS)


_ASCII_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


def edit_distance(reference: Sequence[object], hypothesis: Sequence[object]) -> int:
    """Levenshtein distance between two sequences (characters of a string, or a list of words)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_item in enumerate(reference, 1):
        current = [i]
        for j, hyp_item in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_item != hyp_item)))
        previous = current
    return previous[-1]
