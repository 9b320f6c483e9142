"""text: the caller's own words (a complaint, a name), spoken only; length bounds its characters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voicebot.dialplan.slot_types._base import SlotType, length_ok

if TYPE_CHECKING:
    from voicebot.dialplan.schema import AskSpec


class Text(SlotType):
    name = "text"
    summary = "the utterance itself (speech only); length / min_length / max_length in characters"
    input = "speech"
    settings = frozenset({"length", "min_length", "max_length"})
    free_words = True

    def validate(self, ask: AskSpec, value: Any) -> str | None:
        text = str(value).strip()
        return text if text and length_ok(ask, text) else None

    def from_keys(self, ask: AskSpec, keys: str) -> None:
        return None


SLOT_TYPE = Text()
