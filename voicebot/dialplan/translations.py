"""Prompt translations: which of a multi-language dialplan's languages a prompt lacks, and what those callers hear.

    gap = find_gap({"en": "Hello"}, ["en-US", "zh-CN"])   # Gap(loc=(), missing=("zh",), heard="en")
    gap_message(gap)  # "no Mandarin (zh) text: Mandarin callers hear it in English, in the English voice"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from voicebot.dialplan.prompts import pick_language
from voicebot.dialplan.schema import _prompt_kind
from voicebot.yamlsrc import Loc

__all__ = ["Gap", "base_codes", "find_gap", "gap_hint", "gap_message", "written_in"]

_HANZI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_NOT_WORDS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}|<[^>]*>", re.DOTALL)  # templates and SSML-lite tags
_NAMES = {"en": "English", "zh": "Mandarin", "yue": "Cantonese", "es": "Spanish", "fr": "French", "de": "German",
          "ja": "Japanese", "ko": "Korean"}


@dataclass(frozen=True)
class Gap:
    """A prompt missing languages: `loc` inside the prompt (() or ("text",)), the base codes it lacks, and the
    base code of the text the server speaks to those callers instead."""

    loc: Loc
    missing: tuple[str, ...]
    heard: str


def base_codes(languages: list[str]) -> list[str]:
    """Primary subtags in dialplan order, without repeats: [en-US, zh-CN] -> [en, zh]."""
    return list(dict.fromkeys(_base(tag) for tag in languages))


def written_in(text: str, bases: list[str]) -> str | None:
    """The language of plain text by its script (Hanzi: zh, other letters: the first non-zh language);
    None when it has no words outside templates and tags ("{{ vars.amount }}", digits, punctuation)."""
    words = _NOT_WORDS.sub(" ", text)
    if _HANZI.search(words):
        return "zh"
    if any(char.isalpha() for char in words):
        return next((base for base in bases if base != "zh"), "en")
    return None


def find_gap(prompt: Any, languages: list[str]) -> Gap | None:
    """The languages a raw prompt (str, {lang: text} or {text: ..., audio: ...}) lacks; None if complete or exempt."""
    bases = base_codes(languages)
    if len(bases) < 2:
        return None
    loc: Loc = ()
    if isinstance(prompt, dict) and _prompt_kind(prompt) == "spec":
        prompt, loc = prompt.get("text"), ("text",)  # audio-only prompts have no text to translate
    if isinstance(prompt, str):
        written = written_in(prompt, bases)
        return None if written is None else Gap(loc, tuple(b for b in bases if b != written), written)
    if isinstance(prompt, dict):
        return _map_gap(prompt, languages, bases, loc)
    return None


def _map_gap(texts: dict[str, Any], languages: list[str], bases: list[str], loc: Loc) -> Gap | None:
    spoken = {str(key): str(value) for key, value in texts.items() if isinstance(value, str)}
    if not any(written_in(text, bases) for text in spoken.values()):
        return None
    present = {_base(key) for key in spoken}
    missing = tuple(base for base in bases if base not in present)
    if not missing:
        return None
    fallback = pick_language(spoken, missing[0], languages[0])  # what the interpreter picks for those callers
    heard = next(key for key, text in spoken.items() if text == fallback)
    return Gap(loc, missing, _base(heard))


def gap_message(gap: Gap) -> str:
    """What is missing and what callers hear at run time instead."""
    lacking = " and ".join(f"{_name(base)} ({base})" for base in gap.missing)
    callers = " and ".join(_name(base) for base in gap.missing)
    heard = _name(gap.heard)
    if gap.heard == "zh":  # only zh calls get the Mandarin voice; the others read the Hanzi with the English one
        outcome = f"{callers} callers hear the {heard} text, read by the English voice"
    else:
        outcome = f"{callers} callers hear it in {heard}, in the English voice"
    return f"no {lacking} text: {outcome}"


def gap_hint(field: str, languages: list[str], *, entry: bool = False) -> str:
    """The fix: write the prompt as a map with every language of the dialplan."""
    translated = "{" + ", ".join(f'{base}: "..."' for base in base_codes(languages)) + "}"
    return f"write this {field} entry as {translated}" if entry else f"write {field}: {translated}"


def _base(tag: str) -> str:
    return tag.split("-")[0].lower()


def _name(base: str) -> str:
    return _NAMES.get(base, repr(base))
