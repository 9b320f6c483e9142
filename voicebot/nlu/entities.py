"""Entity extraction for English and Chinese utterances; pure functions, `now` passed in.

Types and values (JSON-friendly so they go straight into slots and call records):
  number        int | float              "twelve point five", "1,234.50", "两百五"
  digits        str                      "four five six seven" -> "4567", "一二三四" -> "1234"
  money         {"amount": float, "currency": "USD"}   "$12.50", "twelve dollars fifty", "12块5", "十二元"
  date          "YYYY-MM-DD"             "tomorrow", "next Monday", "March 3rd", "明天", "下周一", "3月5号"
  time          "HH:MM"                  "3 pm", "half past three", "15:30", "三点半", "下午三点"
  order_id      "A12-3456"               letters+digits, dash, digits
  flight_number "CA981"                  "CA981", "MU 5101"
plus the training data's regex and lookup entity types, with synonyms applied to every value.
A number inside a richer entity (the 3 of "3 pm") is not reported separately.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from voicebot.nlu.base import Entity
from voicebot.nlu.numbers import (
    ZH_DIGIT_CHARS,
    ZH_NUMERAL,
    Chunk,
    Token,
    chunks_to_digits,
    ordinal_value,
    tokenize_en,
    zh_number,
)
from voicebot.nlu.numbers import (
    read_chunks as _read_chunks,
)

__all__ = ["BUILTIN_TYPES", "DataPatterns", "entity_types", "extract_entities"]

BUILTIN_TYPES = frozenset({"number", "digits", "money", "date", "time", "order_id", "flight_number"})
_PLAIN_TYPES = ("number", "digits")


@dataclass(frozen=True)
class DataPatterns:
    """Regex, lookup and synonym entities from the training data."""

    regexes: dict[str, list[str]] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)
    synonyms: dict[str, str] = field(default_factory=dict)  # lower-cased variant -> canonical


MAX_ENTITY_TEXT_CHARS = 1000
"""Entities are looked for in this much of an utterance (a 30 s ASR turn is a few hundred characters): extraction
is linear but costly per token, and typed text (text channel, NLU HTTP API) has no natural bound."""


def extract_entities(
    text: str, lang: str, now: dt.datetime, patterns: DataPatterns | None = None
) -> tuple[Entity, ...]:
    """Every entity found in the first MAX_ENTITY_TEXT_CHARS of `text` ("en" or "zh"), ordered by position."""
    text = text[:MAX_ENTITY_TEXT_CHARS]
    found: list[Entity] = []
    found += _id_entities(text)
    if patterns is not None:
        found += _pattern_entities(text, patterns)
    if lang == "zh":
        found += _zh_entities(text, now)
    else:
        found += _en_entities(text, now)
    entities = _resolve_overlaps(found)
    if patterns is not None and patterns.synonyms:
        entities = [_with_synonym(e, patterns.synonyms) for e in entities]
    return tuple(sorted(entities, key=lambda e: (e.start, -(e.end - e.start), e.type)))


def _entity(kind: str, value: object, text: str, start: int, end: int) -> Entity:
    return Entity(kind, value, text[start:end], start, end)


def _resolve_overlaps(found: list[Entity]) -> list[Entity]:
    """Keep the longest of overlapping rich entities; drop numbers inside them; dedupe."""
    rich = sorted((e for e in found if e.type not in _PLAIN_TYPES), key=lambda e: (e.start, -(e.end - e.start)))
    kept: list[Entity] = []
    for entity in rich:
        if all(entity.end <= k.start or entity.start >= k.end for k in kept) or any(
            (k.start, k.end) == (entity.start, entity.end) and k.type != entity.type for k in kept
        ):
            kept.append(entity)
    rich_kept = list(kept)
    for entity in found:
        if entity.type in _PLAIN_TYPES and all(entity.end <= k.start or entity.start >= k.end for k in rich_kept):
            kept.append(entity)
    unique: dict[tuple[str, int, int], Entity] = {}
    for entity in kept:
        unique.setdefault((entity.type, entity.start, entity.end), entity)
    return list(unique.values())


def _with_synonym(entity: Entity, synonyms: dict[str, str]) -> Entity:
    key = str(entity.value).strip().lower() if isinstance(entity.value, str) else entity.text.lower()
    canonical = synonyms.get(key) or synonyms.get(entity.text.strip().lower())
    if canonical is None:
        return entity
    return Entity(entity.type, canonical, entity.text, entity.start, entity.end)


# ----------------------------------------------------------------------------------- ids and patterns

_ORDER_ID = re.compile(r"(?<![A-Za-z0-9-])([A-Za-z]{1,3}\d{1,4})\s?-\s?(\d{3,8})(?![A-Za-z0-9-])")
_FLIGHT = re.compile(r"(?<![A-Za-z0-9-])([A-Z]{2}|[A-Z]\d|\d[A-Z]) ?(\d{1,4})(?![A-Za-z0-9-])")
_FLIGHT_LOWER = re.compile(r"(?<![A-Za-z0-9-])([a-z]{2})(\d{2,4})(?![A-Za-z0-9-])")


def _id_entities(text: str) -> list[Entity]:
    found = [
        _entity("order_id", f"{m[1].upper()}-{m[2]}", text, m.start(), m.end()) for m in _ORDER_ID.finditer(text)
    ]
    for pattern in (_FLIGHT, _FLIGHT_LOWER):
        for match in pattern.finditer(text):
            if any(match.start() < e.end and e.start < match.end() for e in found):
                continue
            found.append(_entity("flight_number", f"{match[1].upper()}{match[2]}", text, match.start(), match.end()))
    return found


def _pattern_entities(text: str, patterns: DataPatterns) -> list[Entity]:
    found: list[Entity] = []
    for name, regexes in patterns.regexes.items():
        for regex in regexes:
            for match in re.finditer(regex, text):
                if match.end() > match.start():
                    found.append(_entity(name, match.group(), text, match.start(), match.end()))
    lowered = text.lower()
    for name, entries in patterns.lookups.items():
        for entry in entries:
            needle = entry.lower()
            if not needle:
                continue
            boundary = needle.isascii()
            start = lowered.find(needle)
            while start >= 0:
                end = start + len(needle)
                if not boundary or (_is_boundary(lowered, start - 1) and _is_boundary(lowered, end)):
                    found.append(Entity(name, entry, text[start:end], start, end))
                start = lowered.find(needle, start + 1)
    return found


def _is_boundary(text: str, index: int) -> bool:
    return index < 0 or index >= len(text) or not text[index].isalnum()


# -------------------------------------------------------------------------------------------- English

_CURRENCY_WORDS = {
    "dollar": "USD", "dollars": "USD", "buck": "USD", "bucks": "USD", "usd": "USD",
    "euro": "EUR", "euros": "EUR", "eur": "EUR", "pound": "GBP", "pounds": "GBP", "gbp": "GBP",
    "yuan": "CNY", "rmb": "CNY", "cny": "CNY", "renminbi": "CNY", "yen": "JPY",
}
_CENT_WORDS = {"cent", "cents", "pence", "penny"}
_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "CNY"}
_WEEKDAYS = {
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6,
}
_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
    "oct": 10, "nov": 11, "dec": 12,
}
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_CLOCK = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b")


class _MemoTokens(list):  # type: ignore[type-arg]
    """Tokens that remember the number run read at each index: every reader starts one at every token."""

    def __init__(self, tokens: list[Token]) -> None:
        super().__init__(tokens)
        self.runs: dict[int, tuple[list[Chunk], int]] = {}


def read_chunks(tokens: list[Token], index: int) -> tuple[list[Chunk], int]:
    """numbers.read_chunks, memoised per index when `tokens` is a _MemoTokens (the chunks are frozen)."""
    if not isinstance(tokens, _MemoTokens):
        return _read_chunks(tokens, index)
    run = tokens.runs.get(index)
    if run is None:
        run = tokens.runs[index] = _read_chunks(tokens, index)
    return list(run[0]), run[1]


def _en_entities(text: str, now: dt.datetime) -> list[Entity]:
    tokens = _MemoTokens(tokenize_en(text))
    found: list[Entity] = []
    for match in _ISO_DATE.finditer(text):
        day = _safe_date(int(match[1]), int(match[2]), int(match[3]))
        if day is not None:
            found.append(_entity("date", day.isoformat(), text, match.start(), match.end()))
    i = 0
    while i < len(tokens):
        for reader in (_en_time, _en_date, _en_money):
            result = reader(tokens, i, now)
            if result is not None:
                kind, value, end = result
                found.append(_entity(kind, value, text, tokens[i].start, tokens[end - 1].end))
                break
        i += 1
    found += _en_numbers(text, tokens)
    return found


def _en_numbers(text: str, tokens: list[Token]) -> list[Entity]:
    found: list[Entity] = []
    i = 0
    while i < len(tokens):
        chunks, end = read_chunks(tokens, i)
        if not chunks:
            i += 1
            continue
        if tokens[i].text == "oh" and len(chunks) == 1:  # "oh" alone is an interjection
            i = end
            continue
        start, stop = tokens[i].start, tokens[end - 1].end
        digits = chunks_to_digits(chunks)
        if digits is not None:
            found.append(_entity("number", int(digits), text, start, stop))
            found.append(_entity("digits", digits, text, start, stop))
        else:
            for chunk in chunks:
                s, e = tokens[chunk.first].start, tokens[chunk.last - 1].end
                found.append(_entity("number", chunk.value, text, s, e))
                if chunk.digits.isdigit():
                    found.append(_entity("digits", chunk.digits, text, s, e))
        i = end
    return found


def _word(tokens: list[Token], index: int) -> str:
    return tokens[index].text if 0 <= index < len(tokens) else ""


_Read = tuple[str, object, int] | None


def _en_money(tokens: list[Token], i: int, now: dt.datetime) -> _Read:
    word = _word(tokens, i)
    if word in _SYMBOLS:
        chunks, end = read_chunks(tokens, i + 1)
        if not chunks:
            return None
        return "money", {"amount": _amount(chunks), "currency": _SYMBOLS[word]}, end
    chunks, end = read_chunks(tokens, i)
    if not chunks or (i > 0 and read_chunks(tokens, i - 1)[0]):
        return None  # only at the start of a number run
    unit = _word(tokens, end)
    if unit in _CENT_WORDS:
        return "money", {"amount": round(_amount(chunks) / 100, 2), "currency": "USD"}, end + 1
    if unit not in _CURRENCY_WORDS:
        return None
    amount = _amount(chunks)
    end += 1
    j = end + 1 if _word(tokens, end) == "and" else end
    cents, after = read_chunks(tokens, j)
    if len(cents) == 1 and isinstance(cents[0].value, int) and cents[0].value < 100:
        amount = round(amount + cents[0].value / 100, 2)
        end = after + 1 if _word(tokens, after) in _CENT_WORDS else after
    return "money", {"amount": amount, "currency": _CURRENCY_WORDS[unit]}, end


def _amount(chunks: list) -> float:  # type: ignore[type-arg]
    digits = chunks_to_digits(chunks)
    value = int(digits) if digits is not None and len(chunks) > 1 else chunks[0].value
    return round(float(value), 2)


_DAY_PARTS = {"morning": "am", "afternoon": "pm", "evening": "pm", "night": "pm", "tonight": "pm"}


def _en_time(tokens: list[Token], i: int, now: dt.datetime) -> _Read:
    word = _word(tokens, i)
    if word in ("noon", "midday"):
        return "time", "12:00", i + 1
    if word == "midnight":
        return "time", "00:00", i + 1
    if word in ("half", "quarter") or (word not in ("a",) and _is_minute_word(tokens, i)):
        return _en_relative_time(tokens, i)
    chunks, end = read_chunks(tokens, i)
    if not chunks or (i > 0 and read_chunks(tokens, i - 1)[0]):
        return None
    hour: int | float
    minute = 0
    if _word(tokens, end) == ":" and len(chunks) == 1:
        after, stop = read_chunks(tokens, end + 1)
        if len(after) != 1 or not isinstance(after[0].value, int) or after[0].value >= 60:
            return None
        hour, minute, end = chunks[0].value, after[0].value, stop
        if len(tokens[end - 1].text) != 2:
            return None
    elif len(chunks) == 1:
        hour = chunks[0].value
        written = tokens[i].text
        if written.isdigit() and len(written) in (3, 4) and _meridiem(tokens, end)[0]:
            hour, minute = int(written[:-2]), int(written[-2:])  # "330 pm"
    elif len(chunks) == 2 and isinstance(chunks[1].value, int) and chunks[1].value < 60:
        hour, minute = chunks[0].value, chunks[1].value
    elif len(chunks) == 3 and chunks[1].value == 0 and isinstance(chunks[2].value, int) and chunks[2].value < 10:
        hour, minute = chunks[0].value, chunks[2].value  # "nine oh five"
    else:
        return None
    if not isinstance(hour, int) or not 0 <= hour <= 23:
        return None
    meridiem, stop = _meridiem(tokens, end)
    if meridiem is None:
        colon = any(t.text == ":" for t in tokens[i:end])
        if not colon or hour > 23:
            return None
    elif hour > 12 or hour == 0:
        return None
    else:
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    return "time", f"{hour:02d}:{minute:02d}", stop


def _meridiem(tokens: list[Token], i: int) -> tuple[str | None, int]:
    word = _word(tokens, i)
    if word in ("am", "a.m.", "a.m"):
        return "am", i + 1
    if word in ("pm", "p.m.", "p.m"):
        return "pm", i + 1
    if word == "o'clock":
        meridiem, stop = _meridiem(tokens, i + 1)
        return (meridiem or "am"), (stop if meridiem else i + 1)
    if word == "in" and _word(tokens, i + 1) == "the" and _word(tokens, i + 2) in _DAY_PARTS:
        return _DAY_PARTS[_word(tokens, i + 2)], i + 3
    if word == "at" and _word(tokens, i + 1) == "night":
        return "pm", i + 2
    if word == "tonight":
        return "pm", i + 1
    return None, i


def _is_minute_word(tokens: list[Token], i: int) -> bool:
    chunks, end = read_chunks(tokens, i)
    j = end + 1 if _word(tokens, end) in ("minutes", "minute") else end
    return len(chunks) == 1 and _word(tokens, j) in ("past", "to", "after", "before")


def _en_relative_time(tokens: list[Token], i: int) -> _Read:
    word = _word(tokens, i)
    if word == "half":
        minutes, j = 30, i + 1
    elif word == "quarter":
        minutes, j = 15, i + 1
    else:
        chunks, j = read_chunks(tokens, i)
        minutes = int(chunks[0].value)
        if _word(tokens, j) in ("minutes", "minute"):
            j += 1
    direction = _word(tokens, j)
    if direction not in ("past", "to", "after", "before") or minutes >= 60:
        return None
    chunks, end = read_chunks(tokens, j + 1)
    if len(chunks) != 1 or not isinstance(chunks[0].value, int) or not 1 <= chunks[0].value <= 12:
        return None
    hour = chunks[0].value
    meridiem, stop = _meridiem(tokens, end)
    if meridiem == "pm" and hour != 12:
        hour += 12
    total = hour * 60 + (minutes if direction in ("past", "after") else -minutes)
    total %= 24 * 60
    return "time", f"{total // 60:02d}:{total % 60:02d}", stop


def _en_date(tokens: list[Token], i: int, now: dt.datetime) -> _Read:
    today = now.date()
    word = _word(tokens, i)
    if word == "the" and _word(tokens, i + 1) == "day":
        result = _en_date(tokens, i + 1, now)
        return result if result is not None and result[2] > i + 2 else None
    if word == "day" and _word(tokens, i + 1) in ("after", "before"):
        anchor = _word(tokens, i + 2)
        if _word(tokens, i + 1) == "after" and anchor == "tomorrow":
            return "date", (today + dt.timedelta(days=2)).isoformat(), i + 3
        if _word(tokens, i + 1) == "before" and anchor == "yesterday":
            return "date", (today - dt.timedelta(days=2)).isoformat(), i + 3
        return None
    simple = {"today": 0, "tonight": 0, "tomorrow": 1, "tmrw": 1, "yesterday": -1}
    if word in simple:
        if word == "tonight" and i > 0 and _meridiem(tokens, i)[0] and read_chunks(tokens, i - 1)[0]:
            return None  # "eight tonight" is a time
        return "date", (today + dt.timedelta(days=simple[word])).isoformat(), i + 1
    if word == "in":
        chunks, end = read_chunks(tokens, i + 1)
        if not chunks and _word(tokens, i + 1) in ("a", "one"):
            chunks, end = [], i + 2
            count = 1
        elif len(chunks) == 1 and isinstance(chunks[0].value, int):
            count = chunks[0].value
        else:
            return None
        unit = _word(tokens, end)
        if unit in ("day", "days"):
            return "date", (today + dt.timedelta(days=count)).isoformat(), end + 1
        if unit in ("week", "weeks"):
            return "date", (today + dt.timedelta(weeks=count)).isoformat(), end + 1
        return None
    if word in ("next", "this", "last", "coming", "on") and _word(tokens, i + 1) in _WEEKDAYS:
        return "date", _weekday_date(today, _WEEKDAYS[_word(tokens, i + 1)], word).isoformat(), i + 2
    if word in _WEEKDAYS and _word(tokens, i - 1) not in ("next", "this", "last", "coming", "on"):
        return "date", _weekday_date(today, _WEEKDAYS[word], "").isoformat(), i + 1
    if word in _MONTHS and _word(tokens, i - 1) not in ("of",):
        if word == "may" and not (ordinal_value(tokens, i + 1) or read_chunks(tokens, i + 1)[0]):
            return None  # the verb "may"
        j = i + 2 if _word(tokens, i + 1) == "the" else i + 1
        day = _day_number(tokens, j)
        if day is None:
            return None
        value, end = day
        return _month_day(today, _MONTHS[word], value, tokens, end)
    start = i + 1 if word == "the" else i
    day = _day_number(tokens, start)
    if day is not None and (start > i or ordinal_value(tokens, start) is not None):
        value, end = day
        if _word(tokens, end) == "of" and _word(tokens, end + 1) in _MONTHS:
            return _month_day(today, _MONTHS[_word(tokens, end + 1)], value, tokens, end + 2)
    return None


def _day_number(tokens: list[Token], i: int) -> tuple[int, int] | None:
    ordinal = ordinal_value(tokens, i)
    if ordinal is not None:
        return ordinal
    chunks, end = read_chunks(tokens, i)
    if len(chunks) == 1 and isinstance(chunks[0].value, int) and 1 <= chunks[0].value <= 31:
        return chunks[0].value, end
    return None


def _month_day(today: dt.date, month: int, day: int, tokens: list[Token], end: int) -> _Read:
    j = end + 1 if _word(tokens, end) == "," else end
    year_text = _word(tokens, j)
    if year_text.isdigit() and len(year_text) == 4:
        date = _safe_date(int(year_text), month, day)
        return ("date", date.isoformat(), j + 1) if date else None
    date = _nearest_date(today, month, day)
    return ("date", date.isoformat(), end) if date else None


def _weekday_date(today: dt.date, weekday: int, modifier: str) -> dt.date:
    """'next'/'coming'/'on'/'' -> the next such day (today counts only for 'this'/''), 'last' -> previous."""
    delta = (weekday - today.weekday()) % 7
    if modifier == "last":
        return today - dt.timedelta(days=(today.weekday() - weekday) % 7 or 7)
    if modifier in ("next", "coming", "on") and delta == 0:
        delta = 7
    return today + dt.timedelta(days=delta)


def _safe_date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _nearest_date(today: dt.date, month: int, day: int) -> dt.date | None:
    """The month/day in this year, or next year if it is more than half a year past."""
    date = _safe_date(today.year, month, day)
    if date is None:
        return _safe_date(today.year + 1, month, day)
    if (today - date).days > 183:
        return _safe_date(today.year + 1, month, day) or date
    return date


# -------------------------------------------------------------------------------------------- Chinese

_NUM = f"{ZH_NUMERAL}+"
# A numeral is matched from its first character only: retrying inside a long run of numerals made these
# patterns quadratic (3 s on 4000 digits; issue 21.1's audit of regexes on caller-controlled text).
_NO_NUMERAL_BEFORE = f"(?<!{ZH_NUMERAL})"
_ZH_MONEY = re.compile(
    rf"(?P<symbol>[¥￥$])\s*(?P<sym_amount>\d+(?:\.\d+)?)"
    rf"|{_NO_NUMERAL_BEFORE}(?P<int>{_NUM}(?:点{_NUM})?|\d+(?:\.\d+)?)\s*(?P<unit>块钱|块|元|圆|美元|美金|欧元|英镑|日元)"
    rf"(?:(?P<jiao>{ZH_NUMERAL})(?:毛|角)?)?(?:(?P<fen>{ZH_NUMERAL})分)?"
    rf"|(?P<mao>{ZH_NUMERAL})(?:毛|角)(?:钱)?"
)
_ZH_CURRENCY = {"美元": "USD", "美金": "USD", "欧元": "EUR", "英镑": "GBP", "日元": "JPY", "$": "USD"}
_ZH_RELATIVE_DAYS = {"大后天": 3, "后天": 2, "明天": 1, "明日": 1, "今天": 0, "今日": 0, "今晚": 0,
                     "昨天": -1, "昨日": -1, "前天": -2, "大前天": -3}
_ZH_WEEKDAY_NAMES = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5,
                     "1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6}
_ZH_WEEKDAY = re.compile(r"(?P<rel>下下|下个?|上个?|这个?|本)?(?:周|星期|礼拜)(?P<day>[一二三四五六日天末1-7])")
_ZH_MONTH_DAY = re.compile(
    rf"(?:(?P<year>\d{{4}}|[零〇一二三四五六七八九]{{4}})年)?{_NO_NUMERAL_BEFORE}(?P<month>{_NUM})月(?P<day>{_NUM})[日号]"
)
_ZH_DAY_ONLY = re.compile(rf"(?<![月\d]){_NO_NUMERAL_BEFORE}(?P<day>{_NUM})号")
_ZH_TIME = re.compile(
    rf"(?P<part>凌晨|早上|早晨|上午|中午|下午|傍晚|晚上|夜里|今晚)?"
    rf"{_NO_NUMERAL_BEFORE}(?P<hour>{_NUM})(?:点|时|:|：)(?:(?P<half>半)|(?P<quarter>[一三])刻|(?P<minute>{_NUM})分?)?(?:钟)?"
)
_ZH_NUMBER = re.compile(rf"{_NUM}(?:点{_NUM})?|\d+(?:\.\d+)?")


def _zh_entities(text: str, now: dt.datetime) -> list[Entity]:
    today = now.date()
    found: list[Entity] = []
    for match in _ZH_MONEY.finditer(text):
        entity = _zh_money(match, text)
        if entity is not None:
            found.append(entity)
    for match in _ZH_TIME.finditer(text):
        entity = _zh_time(match, text)
        if entity is not None:
            found.append(entity)
    for word, offset in _ZH_RELATIVE_DAYS.items():
        for match in re.finditer(word, text):
            found.append(_entity("date", (today + dt.timedelta(days=offset)).isoformat(), text, *match.span()))
    for match in _ZH_WEEKDAY.finditer(text):
        found.append(_entity("date", _zh_weekday(today, match).isoformat(), text, *match.span()))
    for match in _ZH_MONTH_DAY.finditer(text):
        entity = _zh_month_day(match, text, today)
        if entity is not None:
            found.append(entity)
    for match in _ZH_DAY_ONLY.finditer(text):
        day = zh_number(match["day"])
        if day and isinstance(day[0], int) and 1 <= day[0] <= 31:
            date = _safe_date(today.year, today.month, day[0])
            if date is not None and date < today:  # "5号" said on the 20th means next month's 5th
                next_month = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
                date = _safe_date(next_month.year, next_month.month, day[0])
            if date is not None:
                found.append(_entity("date", date.isoformat(), text, *match.span()))
    for match in _ZH_NUMBER.finditer(text):
        parsed = zh_number(match.group())
        if parsed is None or (match.group() in ("一", "两") and _measure_word_follows(text, match.end())):
            continue
        value, digits = parsed
        found.append(_entity("number", value, text, *match.span()))
        if digits is not None:
            found.append(_entity("digits", digits, text, *match.span()))
    return found


def _measure_word_follows(text: str, index: int) -> bool:
    """'一下', '一个', '两张': a numeral used as an article, not a number the caller gave."""
    return index < len(text) and text[index] in "下个张点些样次起遍会直定般切共位"


def _zh_value(text: str | None) -> int | float | None:
    if not text:
        return None
    parsed = zh_number(text)
    return None if parsed is None else parsed[0]


def _zh_money(match: re.Match[str], text: str) -> Entity | None:
    if match["symbol"]:
        amount = float(match["sym_amount"])
        currency = _ZH_CURRENCY.get(match["symbol"], "CNY")
    elif match["unit"]:
        base = _zh_value(match["int"]) if not match["int"][0].isdigit() or "点" in match["int"] else None
        if base is None:
            try:
                base = float(match["int"])
            except ValueError:
                base = _zh_value(match["int"])
        if base is None:
            return None
        jiao = _zh_value(match["jiao"]) or 0
        fen = _zh_value(match["fen"]) or 0
        amount = float(base) + jiao / 10 + fen / 100
        currency = _ZH_CURRENCY.get(match["unit"], "CNY")
    else:
        mao = _zh_value(match["mao"])
        if mao is None:
            return None
        amount, currency = mao / 10, "CNY"
    return _entity("money", {"amount": round(amount, 2), "currency": currency}, text, *match.span())


def _zh_time(match: re.Match[str], text: str) -> Entity | None:
    hour = _zh_value(match["hour"])
    if not isinstance(hour, int) or not 0 <= hour <= 24:
        return None
    marker = text[match.end("hour")]
    has_detail = bool(match["half"] or match["quarter"] or match["minute"] or match["part"])
    if marker in ":：" and not match["minute"]:
        return None
    if marker == "点" and not has_detail and _zh_decimal_follows(text, match.end()):
        return None
    bare_minute = match["minute"] and not text[match.end("minute") : match.end()].startswith("分")
    if marker == "点" and bare_minute and len(match["minute"]) < 2 and not match["part"]:
        return None  # 十二点五 is 12.5; 三点十五 and 下午三点五 are times
    minute = 30 if match["half"] else 15 * int(_zh_value(match["quarter"]) or 0) if match["quarter"] else 0
    if match["minute"]:
        value = _zh_value(match["minute"])
        if not isinstance(value, int) or value >= 60:
            return None
        minute = value
    part = match["part"]
    if part in ("下午", "傍晚", "晚上", "夜里", "今晚") and hour < 12:
        hour += 12
    elif part == "中午" and hour < 11:
        hour += 12
    elif part == "凌晨" and hour == 12:
        hour = 0
    hour %= 24
    return _entity("time", f"{hour:02d}:{minute:02d}", text, *match.span())


def _zh_decimal_follows(text: str, index: int) -> bool:
    """'十二点五' read as a number: a digit right after '点' with no 分/time word."""
    return index < len(text) and (text[index].isdigit() or text[index] in ZH_DIGIT_CHARS)


def _zh_weekday(today: dt.date, match: re.Match[str]) -> dt.date:
    weekday = _ZH_WEEKDAY_NAMES[match["day"]]
    rel = (match["rel"] or "").replace("个", "")
    monday = today - dt.timedelta(days=today.weekday())
    week = {"下": 1, "下下": 2, "上": -1, "这": 0, "本": 0}.get(rel)
    if week is None:  # bare 周三: the coming one, today included
        return today + dt.timedelta(days=(weekday - today.weekday()) % 7)
    return monday + dt.timedelta(weeks=week, days=weekday)


def _zh_month_day(match: re.Match[str], text: str, today: dt.date) -> Entity | None:
    month, day = _zh_value(match["month"]), _zh_value(match["day"])
    if not isinstance(month, int) or not isinstance(day, int):
        return None
    if match["year"]:
        year = zh_number(match["year"])
        date = _safe_date(int(year[1]) if year and year[1] else 0, month, day) if year else None
    else:
        date = _nearest_date(today, month, day)
    return _entity("date", date.isoformat(), text, *match.span()) if date else None


def entity_types(patterns: DataPatterns | None) -> set[str]:
    """Every entity type extraction can produce with these training-data patterns."""
    extra: Iterable[str] = () if patterns is None else [*patterns.regexes, *patterns.lookups]
    return set(BUILTIN_TYPES) | set(extra)

