"""Entity extraction, table-driven, English and Chinese; relative dates against a fixed `now`."""

from __future__ import annotations

import datetime as dt

import pytest

from voicebot.nlu.entities import DataPatterns, extract_entities
from voicebot.nlu.numbers import zh_number

NOW = dt.datetime(2025, 3, 5, 10, 0)  # a Wednesday


def _found(text: str, lang: str, patterns: DataPatterns | None = None) -> set[tuple[str, object, str]]:
    entities = extract_entities(text, lang, NOW, patterns)
    for entity in entities:
        assert text[entity.start : entity.end] == entity.text
    return {(e.type, repr(e.value), e.text) for e in entities}


def usd(amount: float) -> dict[str, object]:
    return {"amount": amount, "currency": "USD"}


def cny(amount: float) -> dict[str, object]:
    return {"amount": amount, "currency": "CNY"}


EN_CASES = [
    ("my pin is four five six seven", [("digits", "4567", "four five six seven"), ("number", 4567, "four five six seven")]),
    ("double five oh one", [("digits", "5501", "double five oh one"), ("number", 5501, "double five oh one")]),
    ("twelve fifty", [("digits", "1250", "twelve fifty"), ("number", 1250, "twelve fifty")]),
    ("it was 1,234.50", [("number", 1234.5, "1,234.50")]),
    ("one hundred and five", [("digits", "105", "one hundred and five"), ("number", 105, "one hundred and five")]),
    ("two thousand three hundred forty five", [("digits", "2345", "two thousand three hundred forty five"),
                                               ("number", 2345, "two thousand three hundred forty five")]),
    ("twelve point five percent", [("number", 12.5, "twelve point five")]),
    ("$12.50 please", [("money", usd(12.5), "$12.50")]),
    ("twelve dollars fifty", [("money", usd(12.5), "twelve dollars fifty")]),
    ("twelve dollars and fifty cents", [("money", usd(12.5), "twelve dollars and fifty cents")]),
    ("fifty cents", [("money", usd(0.5), "fifty cents")]),
    ("send 20 euros", [("money", {"amount": 20.0, "currency": "EUR"}, "20 euros")]),
    ("tomorrow at 3 pm", [("date", "2025-03-06", "tomorrow"), ("time", "15:00", "3 pm")]),
    ("next Monday", [("date", "2025-03-10", "next Monday")]),
    ("last friday", [("date", "2025-02-28", "last friday")]),
    ("on Wednesday", [("date", "2025-03-12", "on Wednesday")]),
    ("March 3rd", [("date", "2025-03-03", "March 3rd")]),
    ("the third of march 2026", [("date", "2026-03-03", "the third of march 2026")]),
    ("December 24", [("date", "2025-12-24", "December 24")]),
    ("the day after tomorrow", [("date", "2025-03-07", "the day after tomorrow")]),
    ("in 3 days", [("date", "2025-03-08", "in 3 days")]),
    ("2025-04-01", [("date", "2025-04-01", "2025-04-01")]),
    ("three thirty pm", [("time", "15:30", "three thirty pm")]),
    ("half past three in the afternoon", [("time", "15:30", "half past three in the afternoon")]),
    ("quarter to four", [("time", "03:45", "quarter to four")]),
    ("at 15:30", [("time", "15:30", "15:30")]),
    ("seven o'clock", [("time", "07:00", "seven o'clock")]),
    ("noon", [("time", "12:00", "noon")]),
    ("order A12-3456 please", [("order_id", "A12-3456", "A12-3456")]),
    ("flight CA981 and MU 5101", [("flight_number", "CA981", "CA981"), ("flight_number", "MU5101", "MU 5101")]),
    ("I may call you", []),
    ("oh I see", []),
]


@pytest.mark.parametrize(("text", "expected"), EN_CASES)
def test_english(text: str, expected: list[tuple[str, object, str]]) -> None:
    assert _found(text, "en") == {(kind, repr(value), span) for kind, value, span in expected}


ZH_CASES = [
    ("12块5", [("money", cny(12.5), "12块5")]),
    ("十二元", [("money", cny(12.0), "十二元")]),
    ("三块五毛", [("money", cny(3.5), "三块五毛")]),
    ("五毛钱", [("money", cny(0.5), "五毛钱")]),
    ("转账两百五十元", [("money", cny(250.0), "两百五十元")]),
    ("100美元", [("money", {"amount": 100.0, "currency": "USD"}, "100美元")]),
    ("明天下午三点半", [("date", "2025-03-06", "明天"), ("time", "15:30", "下午三点半")]),
    ("下周一", [("date", "2025-03-10", "下周一")]),
    ("这周五", [("date", "2025-03-07", "这周五")]),
    ("上星期二", [("date", "2025-02-25", "上星期二")]),
    ("3月5号", [("date", "2025-03-05", "3月5号")]),
    ("二零二六年三月五日", [("date", "2026-03-05", "二零二六年三月五日")]),
    ("三点半", [("time", "03:30", "三点半")]),
    ("十点一刻", [("time", "10:15", "十点一刻")]),
    ("晚上八点", [("time", "20:00", "晚上八点")]),
    ("上午9:30", [("time", "09:30", "上午9:30")]),
    ("十二点五", [("number", 12.5, "十二点五")]),
    ("尾号一二三四", [("digits", "1234", "一二三四"), ("number", 1234, "一二三四")]),
    ("一千零五", [("digits", "1005", "一千零五"), ("number", 1005, "一千零五")]),
    ("航班CA981", [("flight_number", "CA981", "CA981")]),
    ("帮我查一下", []),
    ("再说一遍", []),
]


@pytest.mark.parametrize(("text", "expected"), ZH_CASES)
def test_chinese(text: str, expected: list[tuple[str, object, str]]) -> None:
    assert _found(text, "zh") == {(kind, repr(value), span) for kind, value, span in expected}


@pytest.mark.parametrize(
    ("text", "value"),
    [("两百五", 250), ("一万五", 15000), ("一万五千", 15000), ("十二", 12), ("3千", 3000),
     ("一百零八", 108), ("三千五百万", 35_000_000), ("幺零八六", 1086), ("abc", None)],
)
def test_zh_numerals(text: str, value: int | None) -> None:
    parsed = zh_number(text)
    assert (parsed[0] if parsed else None) == value


def test_training_data_patterns_and_synonyms() -> None:
    patterns = DataPatterns(
        regexes={"account_number": [r"\b\d{10}\b"]},
        lookups={"bank": ["Wells Fargo", "Chase"], "account_type": ["储蓄卡"]},
        synonyms={"wells fargo": "wells_fargo", "储蓄卡": "savings"},
    )
    assert _found("move it from wells fargo to 1234567890", "en", patterns) == {
        ("bank", repr("wells_fargo"), "wells fargo"),
        ("account_number", repr("1234567890"), "1234567890"),
    }
    assert ("bank", repr("Chase"), "Chase") not in _found("Chasers", "en", patterns)  # whole words only
    assert _found("查储蓄卡余额", "zh", patterns) == {("account_type", repr("savings"), "储蓄卡")}
