"""Match what the caller said against what the backend already returned about them. Pure functions.

Two questions a good agent asks itself before answering:
- Which of the caller's records did they name? "the refund for my shoes" names the running shoes, not the latest
  order (the headphones): `mentioned(orders, text, ["item", "item_zh"])`.
- Which of the caller's own codes did they mean? "A one two, three zero zero one" is A12-3001; a misheard or
  partial code ("A12 3011", "three zero zero one") is close to exactly one of their orders: `code_matches`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from voicebot.nlu.numbers import read_digits

__all__ = ["code_key", "code_matches", "mentioned"]

# Words that name no particular record: "my order", "the item", "a refund for the delivery"
_GENERIC = frozenset({
    "order", "orders", "item", "items", "thing", "things", "parcel", "package", "delivery", "refund", "return",
    "status", "with", "from", "your", "that", "this", "about", "please", "want", "would", "like", "know", "have",
    "where", "what", "when", "which", "there", "their", "them", "they", "some", "just", "also", "bought",
})
_MIN_WORD = 4  # shorter English words ("box", "set") name too little to pick a record by
_MAX_TEXT = 2000  # caller text is bounded before any matching (it is caller-controlled)


def _latin_words(text: str) -> set[str]:
    words = set()
    for word in re.findall(r"[a-z]+", text.lower()):
        if len(word) >= _MIN_WORD and word not in _GENERIC:
            words.add(word[:-2] if word.endswith("es") and len(word) > 5 else word.rstrip("s"))
    return words


def _hanzi_pairs(text: str) -> set[str]:
    runs = re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff]+", text)
    return {run[i:i + 2] for run in runs for i in range(len(run) - 1)}


def mentioned(items: Any, text: str | None, fields: Sequence[str]) -> list[Any]:
    """The records among `items` whose `fields` the caller's `text` names (a word of 4+ letters, plural folded,
    or two Hanzi in a row), in their order. Nothing named, or no text: an empty list."""
    if not text or not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        return []
    text = text[:_MAX_TEXT]
    said_words, said_pairs = _latin_words(text), _hanzi_pairs(text)
    found = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        names = " ".join(str(item.get(field) or "") for field in fields)
        if (_latin_words(names) & said_words) or (_hanzi_pairs(names) & said_pairs):
            found.append(item)
    return found


def code_key(text: str) -> str:
    """A code as letters and digits only, spoken digits read: "A one two, three zero zero one" -> "A123001",
    "DEF 456" -> "DEF456", "幺二三" -> "123". Other words ("dash", "my order is") are skipped: a code's letters are
    written in capitals (as the recogniser writes spelled letters)."""
    return read_digits(text[:_MAX_TEXT], letters=True)


def _within_one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) <= 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def code_matches(codes: Sequence[str], heard: str) -> tuple[list[str], bool]:
    """The caller's own `codes` that `heard` means, and whether the match is exact.

    Exact: the same letters and digits ("A12, 3001" for A12-3001). Otherwise near: one letter or digit misheard,
    dropped or added, or the heard digits are the code's last 4+ characters ("three zero zero one"). Several
    near matches are returned together: the dialplan must ask which one, never pick."""
    key = code_key(heard)
    if not key:
        return [], False
    exact = [code for code in codes if code_key(code) == key]
    if exact:
        return exact, True
    near = [code for code in codes
            if (len(key) >= 4 and _within_one_edit(code_key(code), key))
            or (len(key) >= 4 and code_key(code).endswith(key))]
    return near, False
