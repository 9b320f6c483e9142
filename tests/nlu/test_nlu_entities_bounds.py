"""Entity extraction on hostile text: no exception, bounded time (issue 21.1's audit of caller-controlled text)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from voicebot.nlu.entities import extract_entities

NOW = dt.datetime(2026, 1, 1, 9, 0)
HOSTILE = ["1 " * 10000, "one " * 5000, "twenty " * 4000, "一" * 20000, "1" * 20000, "一" * 20000 + "块",
           "1" * 20000 + "月", "$" + "1" * 20000, "点一" * 10000]


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: f"{t[:6]!r}x{len(t)}")
def test_hostile_text_neither_raises_nor_stalls(text: str, lang: str) -> None:
    start = time.perf_counter()
    extract_entities(text, lang, NOW)  # before: ValueError/OverflowError, or 3-120 s of CPU on the event loop
    assert time.perf_counter() - start < 1.5


def test_numbers_are_still_read_after_bounding() -> None:
    en = {e.type: e.value for e in extract_entities("four one one one, twelve fifty at 5 pm", "en", NOW)}
    assert en["time"] == "17:00"
    zh = {e.type: e.value for e in extract_entities("三百五十块，下午三点", "zh", NOW)}
    assert zh["money"] and zh["time"] == "15:00"
