"""pattern: a code matching the ask's regular expression — a flight CA981, a booking ref, an order A12-3001."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from voicebot.dialplan.slot_types._base import SlotType, length_ok
from voicebot.nlu.numbers import read_digits

if TYPE_CHECKING:
    from voicebot.dialplan.schema import AskSpec
    from voicebot.speech.grammar import Grammar


class Pattern(SlotType):
    name = "pattern"
    summary = 'a code matching pattern: "[A-Z]{2}[0-9]{3,4}" (case and spaces forgiven, spelled letters and digits read)'
    settings = frozenset({"pattern", "length", "min_length", "max_length"})
    required = {"pattern": 'pattern: "[A-Z]{2}[0-9]{4}"'}
    closed = True

    def validate(self, ask: AskSpec, value: Any) -> str | None:
        found = match_pattern(ask.pattern or "", str(value))
        return found if found is not None and length_ok(ask, found) else None

    def grammar(self, ask: AskSpec, known_values: Iterable[str] = ()) -> Grammar | None:
        from voicebot.speech.grammar import Grammar, spoken_forms

        if not ask.pattern:
            return None
        values = tuple(dict.fromkeys(v for v in known_values if re.fullmatch(ask.pattern, v)))
        return Grammar("pattern", pattern=ask.pattern, options=tuple((v, spoken_forms(v)) for v in values))


def match_pattern(pattern: str, text: str) -> str | None:
    """The answer as the pattern wants it: as said, upper-cased, without spaces/dashes, or spelled out
    ("D E F four five six" -> DEF456); else a whole word of a longer sentence ("it's CA981 please"), never a piece
    of a longer code (U857 is not read out of XU8571)."""
    regex = re.compile(pattern)
    for candidate in (text, text.upper(), re.sub(r"[\s-]", "", text).upper(), read_digits(text, letters=True)):
        if candidate and regex.fullmatch(candidate):
            return candidate
    for candidate in (text, text.upper()):
        for match in regex.finditer(candidate):
            before = candidate[match.start() - 1] if match.start() > 0 else " "
            after = candidate[match.end()] if match.end() < len(candidate) else " "
            if not (before.isalnum() or after.isalnum()):
                return match.group(0)
    return None


SLOT_TYPE = Pattern()
