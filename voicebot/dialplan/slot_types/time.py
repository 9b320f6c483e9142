"""time: a time of day as HH:MM — NLU time ("half past three", "三点半"), "2:30 pm", keys HHMM."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from voicebot.dialplan.slot_types._base import SlotType

if TYPE_CHECKING:
    from voicebot.dialplan.schema import AskSpec


class Time(SlotType):
    name = "time"
    summary = "a time of day as HH:MM: NLU time entity (en/zh), text such as 2:30 pm, keys HHMM"
    entities = ("time",)
    keyed_length = 4
    closed = True

    def from_keys(self, ask: AskSpec, keys: str) -> str | None:
        return clock(int(keys[:2]), int(keys[2:])) if re.fullmatch(r"\d{4}", keys) else None

    def from_text(self, ask: AskSpec, text: str) -> str | None:
        match = re.search(r"\b(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?", text.lower())
        if not match or (match.group(2) is None and match.group(3) is None):
            return None
        hour, minute = int(match.group(1)), int(match.group(2) or 0)
        suffix = (match.group(3) or "").replace(".", "")
        if suffix == "pm" and hour < 12:
            hour += 12
        elif suffix == "am" and hour == 12:
            hour = 0
        return clock(hour, minute)


def clock(hour: int, minute: int) -> str | None:
    return f"{hour:02d}:{minute:02d}" if 0 <= hour < 24 and 0 <= minute < 60 else None


SLOT_TYPE = Time()
