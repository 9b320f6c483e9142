"""money: an amount ("$12.50", NLU money {"amount", "currency"}), keyed with * as the decimal point."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from voicebot.dialplan.slot_types._base import SlotType, to_number

if TYPE_CHECKING:
    from voicebot.dialplan.schema import AskSpec


class Money(SlotType):
    name = "money"
    summary = "an amount: NLU money/amount entity, text such as $12.50, keys with * as the decimal point"
    entities = ("money", "amount", "number")

    def validate(self, ask: AskSpec, value: Any) -> Any | None:
        return dict(value) if isinstance(value, Mapping) else to_number(value)

    def from_keys(self, ask: AskSpec, keys: str) -> int | float | None:
        return to_number(keys.replace("*", "."))

    def from_text(self, ask: AskSpec, text: str) -> int | float | None:
        match = re.search(r"\d+(?:\.\d{1,2})?", text.replace(",", ""))
        return to_number(match.group(0)) if match else None

    def read_back(self, ask: AskSpec, value: Any, lang: str) -> str:
        """{"amount": 12.5, "currency": "USD"} -> "12.5 USD" (the text normaliser says it)."""
        if isinstance(value, Mapping) and "amount" in value:
            return f"{value['amount']} {value.get('currency') or ''}".strip()
        return super().read_back(ask, value, lang)


SLOT_TYPE = Money()
