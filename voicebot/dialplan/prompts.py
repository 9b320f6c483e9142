"""Prompt text helpers: language selection and SSML-lite (`<break time="500ms"/>` is the only tag)."""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["SsmlError", "parse_ssml_lite", "pick_language", "plain_text"]

_TAG = re.compile(r"<[^>]*>")
_BREAK = re.compile(r'<break\s+time\s*=\s*"(?P<amount>\d+(?:\.\d+)?)(?P<unit>ms|s)"\s*/>')
MAX_BREAK_MS = 10_000


class SsmlError(ValueError):
    """Markup other than `<break time="..."/>` or a pause out of range."""


def parse_ssml_lite(text: str) -> tuple[str | int, ...]:
    """Split text into spoken parts (str) and pauses (int milliseconds)."""
    parts: list[str | int] = []
    position = 0
    for tag in _TAG.finditer(text):
        match = _BREAK.fullmatch(tag.group(0))
        if match is None:
            raise SsmlError(
                f"unsupported markup {tag.group(0)!r}; only <break time=\"500ms\"/> is allowed"
            )
        amount = float(match["amount"]) * (1000 if match["unit"] == "s" else 1)
        if not 0 < amount <= MAX_BREAK_MS:
            raise SsmlError(f"break of {amount:g} ms is out of range (1..{MAX_BREAK_MS})")
        before = text[position : tag.start()].strip()
        if before:
            parts.append(before)
        parts.append(int(amount))
        position = tag.end()
    rest = text[position:].strip()
    if rest:
        parts.append(rest)
    stripped = _TAG.sub("", text)
    if "<" in stripped or ">" in stripped:
        raise SsmlError("a stray '<' or '>' in prompt text; write the words out")
    return tuple(parts)


def plain_text(parts: tuple[str | int, ...]) -> str:
    """The spoken words of parsed parts, pauses dropped."""
    return " ".join(part for part in parts if isinstance(part, str))


def pick_language(texts: Mapping[str, str], lang: str, default_lang: str) -> str | None:
    """The text for `lang` from {lang-or-primary-subtag: text}: exact tag, primary subtag, then default."""
    for wanted in (lang, default_lang):
        if wanted in texts:
            return texts[wanted]
        primary = wanted.split("-")[0]
        if primary in texts:
            return texts[primary]
        for key, value in texts.items():
            if key.split("-")[0] == primary:
                return value
    return next(iter(texts.values()), None)
