"""Add labelled examples to a Rasa nlu.yml as text, keeping its comments and layout. Pure: text in, text out.

The improvement loop: utterances the bot did not understand (from the call records) are labelled by an author with
an intent and added here; `voicebot nlu eval` then shows the effect. An example already present (same text,
case- and space-insensitive) is skipped; an unknown intent gets a new block at the end of the `nlu:` list. The
result is parsed again before it is returned, so a broken file is never written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from voicebot.nlu.rasa_data import parse_nlu_text

__all__ = ["AddResult", "add_examples"]

_INTENT_LINE = re.compile(r"^- intent:\s*(?P<name>[^#\s][^#]*?)\s*(?:#.*)?$")
_EXAMPLE_LINE = re.compile(r"^(?P<indent>\s+)- (?P<text>.*)$")
_NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class AddResult:
    text: str
    added: list[str]
    skipped: list[str]  # already there


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def _clean(example: str) -> str:
    text = " ".join(example.split())
    if not text:
        raise ValueError("an example must not be empty")
    if len(text) > 300:
        raise ValueError(f"an example is at most 300 characters: {text[:40]}…")
    if any(mark in text for mark in ("[", "]", "{", "}")):
        raise ValueError(f"example {text!r}: brackets are Rasa entity annotations; add plain text")
    return text


def add_examples(source: str, intent: str, examples: Iterable[str], *, label: str = "<nlu.yml>") -> AddResult:
    """`source` with `examples` added under `intent` (see the module docstring). Raises ValueError on bad input."""
    if not _NAME.match(intent):
        raise ValueError(f"intent name {intent!r}: use letters, digits and _")
    existing = parse_nlu_text(source, label)
    known = {_key(example.text) for example in existing.examples}
    added, skipped = [], []
    for example in examples:
        text = _clean(example)
        if _key(text) in known:
            skipped.append(text)
        else:
            known.add(_key(text))
            added.append(text)
    if not added:
        return AddResult(source, [], skipped)
    lines = source.splitlines()
    start = next((i for i, line in enumerate(lines) if (m := _INTENT_LINE.match(line)) and m["name"] == intent), None)
    if start is None:
        block = [f"- intent: {intent}", "  examples: |", *(f"    - {text}" for text in added)]
        end = _end_of_nlu_list(lines)
        lines[end:end] = block
    else:
        last, indent = start, "    "
        for i in range(start + 1, len(lines)):
            line = lines[i]
            if line.startswith("- ") or (line and not line.startswith(" ")):
                break
            match = _EXAMPLE_LINE.match(line)
            if match and len(match["indent"]) >= 4:
                last, indent = i, match["indent"]
        lines[last + 1:last + 1] = [f"{indent}- {text}" for text in added]  # a literal block: kept as is
    result = "\n".join(lines) + "\n"
    parse_nlu_text(result, label)  # never hand back a file Rasa (or we) could not read
    return AddResult(result, added, skipped)


def _end_of_nlu_list(lines: list[str]) -> int:
    """The line index after the last item of the top-level `nlu:` list (before the next top-level key)."""
    inside, end = False, len(lines)
    for i, line in enumerate(lines):
        if line.startswith("nlu:"):
            inside = True
            continue
        if inside and line and not line.startswith((" ", "-", "#")):
            end = i
            break
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    return end
