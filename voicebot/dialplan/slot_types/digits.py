"""digits: a digit string of a length — an account number, a PIN, a phone number; said digit by digit or keyed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from voicebot.dialplan.slot_types._base import SlotType, length_ok
from voicebot.nlu.numbers import read_digits

if TYPE_CHECKING:
    from voicebot.dialplan.schema import AskSpec
    from voicebot.speech.grammar import Grammar


class Digits(SlotType):
    name = "digits"
    summary = "spoken digits in English/Chinese (one two, 幺两三, double five) or keys; length / min_length / max_length"
    entities = ("digits", "number")
    settings = frozenset({"length", "min_length", "max_length"})
    closed = True
    growing = "more digits may follow"
    uses_nlu = False

    def validate(self, ask: AskSpec, value: Any) -> str | None:
        digits = str(value).replace(" ", "")
        return digits if digits.isdigit() and length_ok(ask, digits) else None

    def from_text(self, ask: AskSpec, text: str) -> str | None:
        return self.validate(ask, read_digits(text))

    def is_final(self, ask: AskSpec, value: Any) -> bool:
        """Final at the exact length or the maximum length (else the caller may go on)."""
        if ask.length is not None:
            return len(str(value)) == ask.length
        return ask.max_length is not None and len(str(value)) >= ask.max_length

    def read_back(self, ask: AskSpec, value: Any, lang: str) -> str:
        return " ".join(value) if isinstance(value, str) else super().read_back(ask, value, lang)

    def grammar(self, ask: AskSpec, known_values: Iterable[str] = ()) -> Grammar | None:
        from voicebot.speech.grammar import digits_grammar

        return digits_grammar(ask.length, ask.min_length, ask.max_length, known=tuple(known_values))


SLOT_TYPE = Digits()
