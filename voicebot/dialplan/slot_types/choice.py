"""choice: one of the ask's options, picked by its name, its words (any language) or its key."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from voicebot.dialplan.slot_types._base import SlotType

if TYPE_CHECKING:
    from voicebot.dialplan.schema import AskSpec
    from voicebot.speech.grammar import Grammar


class Choice(SlotType):
    name = "choice"
    summary = "one of options: {red: [crimson], blue: {say: [navy, 蓝色], dtmf: \"2\"}}"
    keyed_length = 1
    settings = frozenset({"options"})
    required = {"options": "options: {red: [red], blue: [blue]}"}
    closed = True

    def validate(self, ask: AskSpec, value: Any) -> str | None:
        lowered = str(value).lower()
        for name, phrases in option_phrases(ask).items():
            for phrase in [name, *phrases]:
                phrase = phrase.lower()
                if phrase.isascii():
                    if re.search(r"\b" + re.escape(phrase) + r"\b", lowered):
                        return name
                elif phrase in lowered:
                    return name
        return None

    def from_keys(self, ask: AskSpec, keys: str) -> str | None:
        return next((name for name, option in (ask.options or {}).items()
                     if not isinstance(option, list) and option.dtmf == keys), None)

    def from_intent(self, ask: AskSpec, intent: str) -> str | None:
        return intent if intent in (ask.options or {}) else None

    def grammar(self, ask: AskSpec, known_values: Iterable[str] = ()) -> Grammar | None:
        from voicebot.speech.grammar import choice_grammar

        return choice_grammar(option_phrases(ask)) if ask.options else None


def option_phrases(ask: AskSpec) -> dict[str, list[str]]:
    """Each option's words (an option is a list of words or {say: [...], dtmf: key})."""
    return {name: (option if isinstance(option, list) else list(option.say))
            for name, option in (ask.options or {}).items()}


SLOT_TYPE = Choice()
