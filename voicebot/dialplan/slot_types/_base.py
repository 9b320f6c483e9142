"""What a slot type knows, as one class: subclass `SlotType` in one module and the whole dialplan picks it up."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from voicebot.dialplan.schema import AskSpec
    from voicebot.speech.grammar import Grammar

__all__ = ["SETTINGS", "SlotType", "is_zh", "length_ok", "to_number"]

SETTINGS = ("length", "min_length", "max_length", "options", "pattern")
"""The ask fields that belong to some slot types only; a type lists the ones it reads in `settings`."""

InputMode = Literal["speech", "dtmf", "both"]


class SlotType:
    """One kind of answer an ask collects. Defaults suit a value keyed as digits and said as itself.

    The interpreter, the early endpointer, the validator, the recognition grammar and the JSON Schema all ask the
    slot's type through this interface; nothing else in the code names a type.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    """One line for the JSON Schema and error hints, e.g. "digits: spoken or keyed digits"."""
    entities: ClassVar[tuple[str, ...]] = ()
    """NLU entity types that fill it (after the slot's own name), most specific first."""
    input: ClassVar[InputMode] = "both"
    """Default input mode of an ask of this type."""
    keyed_length: ClassVar[int] = 32
    """Keys collected when the ask sets no length (the terminator # or the inter-digit timeout end it sooner)."""
    settings: ClassVar[frozenset[str]] = frozenset()
    """Which of SETTINGS this type reads; the others are refused on its asks."""
    required: ClassVar[Mapping[str, str]] = {}
    """Settings an ask of this type must give -> an example for the error hint."""
    closed: ClassVar[bool] = False
    """A parsed value answers the question (early endpointing may end the turn); open answers may go on."""
    growing: ClassVar[str] = "more may follow"
    """Why a closed value that is not final yet waits (see `is_final`)."""
    free_words: ClassVar[bool] = False
    """Any words are a value: a global intent ("agent") wins over filling the slot with them."""
    uses_nlu: ClassVar[bool] = True
    """The NLU's entities help to read the answer (False: the type reads the words itself)."""

    # ------------------------------------------------------------------ reading an answer

    def validate(self, ask: AskSpec, value: Any) -> Any | None:
        """Coerce a value (an NLU entity, a grammar match, parsed text) to the slot, or None when it does not fit."""
        return value

    def from_keys(self, ask: AskSpec, keys: str) -> Any | None:
        """The value keyed on the phone (the terminator # already removed, never empty)."""
        return self.validate(ask, keys) if keys.isdigit() else None

    def from_text(self, ask: AskSpec, text: str) -> Any | None:
        """The value in recognised or typed words, English or Chinese (stripped, never empty)."""
        return self.validate(ask, text)

    def from_intent(self, ask: AskSpec, intent: str) -> Any | None:
        """The value an NLU intent gives (affirm -> yes), or None."""
        return None

    def is_final(self, ask: AskSpec, value: Any) -> bool:
        """May this (closed) value end the turn early, or may the caller still go on ("one two" of four digits)?"""
        return self.closed

    # ------------------------------------------------------------------ saying, hearing, describing

    def read_back(self, ask: AskSpec, value: Any, lang: str) -> str:
        """How a value is read back in a confirmation ("You said {{value}}")."""
        if isinstance(value, bool):
            return ("是" if value else "不是") if is_zh(lang) else ("yes" if value else "no")
        return str(value)

    def grammar(self, ask: AskSpec, known_values: Iterable[str] = ()) -> Grammar | None:
        """What constrained recognition listens for (voicebot.speech.grammar), or None for a free decode."""
        return None

    def check(self, ask: AskSpec) -> None:
        """Type-specific checks of an ask beyond `settings` and `required`; raise LocatedValueError."""

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema an ask of this type must also satisfy (what `settings`/`required` say, by default)."""
        fragment: dict[str, Any] = {}
        if self.required:
            fragment["required"] = sorted(self.required)
        refused = [field for field in SETTINGS if field not in self.settings]
        if refused:
            fragment["properties"] = {field: {"type": "null"} for field in refused}
        return fragment


def length_ok(ask: AskSpec, value: str) -> bool:
    """The ask's length, min_length and max_length hold for `value`."""
    if ask.length is not None and len(value) != ask.length:
        return False
    if ask.min_length is not None and len(value) < ask.min_length:
        return False
    return not (ask.max_length is not None and len(value) > ask.max_length)


def to_number(value: Any) -> int | float | None:
    """An int or float from a number or its text ("1,250" -> 1250, "12.5" -> 12.5); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        number = float(str(value).replace(",", ""))
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


def is_zh(lang: str) -> bool:
    return lang.lower().startswith("zh")
