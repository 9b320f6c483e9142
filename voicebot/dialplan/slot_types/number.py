"""number: a quantity ("about 1,250", "twelve point five" through the NLU), keyed as digits."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from voicebot.dialplan.slot_types._base import SlotType, to_number

if TYPE_CHECKING:
    from voicebot.dialplan.schema import AskSpec


class Number(SlotType):
    name = "number"
    summary = "a number: NLU number entity (spoken en/zh), written 1,250 or 12.5, keys"
    entities = ("number",)

    def validate(self, ask: AskSpec, value: Any) -> int | float | None:
        return to_number(value)

    def from_text(self, ask: AskSpec, text: str) -> int | float | None:
        match = re.search(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
        return to_number(match.group(0)) if match else None


SLOT_TYPE = Number()
