"""date: a calendar day as YYYY-MM-DD — NLU date ("next Tuesday", "明天"), ISO text, keys YYYYMMDD."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from voicebot.dialplan.slot_types._base import SlotType

if TYPE_CHECKING:
    from voicebot.dialplan.schema import AskSpec


class Date(SlotType):
    name = "date"
    summary = "a day as YYYY-MM-DD: NLU date entity (en/zh), ISO text, keys YYYYMMDD"
    entities = ("date",)
    keyed_length = 8
    closed = True

    def from_keys(self, ask: AskSpec, keys: str) -> str | None:
        """Only YYYYMMDD is a keyed date: anything else is no match and the caller is asked again."""
        return iso_date(keys[:4], keys[4:6], keys[6:]) if re.fullmatch(r"\d{8}", keys) else None

    def from_text(self, ask: AskSpec, text: str) -> str | None:
        match = re.search(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", text)
        return iso_date(*match.groups()) if match else None


def iso_date(year: str, month: str, day: str) -> str | None:
    y, m, d = int(year), int(month), int(day)
    if not (1 <= m <= 12 and 1 <= d <= 31):
        return None
    return f"{y:04d}-{m:02d}-{d:02d}"


SLOT_TYPE = Date()
