"""Agent assist: knowledge cards for the agent from what the caller just said (shown on the desktop, never spoken).

Pure logic per bridged call: `query()` turns the caller's latest line (with the one before when it is short) into
a search; `cards()` keeps the hits at or above ``min_score`` that the agent has not been shown yet in this call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

MIN_WORDS = 4  # a shorter line ("yes, the refund") is searched together with the caller's previous line


class HitLike(Protocol):
    score: float

    @property
    def article(self) -> Any: ...


def card(hit: HitLike) -> dict[str, Any]:
    """What the desktop shows of a hit: the article's id, version, title, short answer and score."""
    meta = hit.article.meta
    return {"id": meta.id, "version": meta.version, "title": meta.title, "short_answer": meta.short_answer,
            "tags": list(meta.tags), "score": round(float(hit.score), 3)}


@dataclass
class AgentAssist:
    """One bridged call's assist state."""

    min_score: float = 0.3
    max_cards: int = 2
    _lines: list[str] = field(default_factory=list)
    _shown: set[str] = field(default_factory=set)

    def query(self, caller_line: str) -> str:
        """The search for the caller's newest (redacted) line."""
        line = caller_line.strip()
        previous = self._lines[-1] if self._lines else ""
        if line:
            self._lines = self._lines[-3:] + [line]
        if len(_words(line)) < MIN_WORDS and previous:
            return f"{previous} {line}".strip()
        return line

    def cards(self, hits: Sequence[HitLike]) -> list[dict[str, Any]]:
        """New cards, best first: hits scoring ``min_score`` or more, each article at most once per call."""
        fresh: list[dict[str, Any]] = []
        for hit in hits:
            if hit.score < self.min_score or len(fresh) >= self.max_cards:
                continue
            shown = card(hit)
            if shown["id"] in self._shown:
                continue
            self._shown.add(shown["id"])
            fresh.append(shown)
        return fresh


def _words(text: str) -> list[str]:
    """Words, counting each Hanzi as one (Mandarin has no spaces)."""
    words: list[str] = []
    for token in text.split():
        hanzi = [c for c in token if "\u3400" <= c <= "\u9fff"]
        words.extend(hanzi if hanzi else [token])
    return words
