"""Text normalisation before TTS: numbers, money, times, ordinals, percentages and phone numbers as words.

Pure functions. `normalize(text, language)` dispatches to `normalize_en` / `normalize_zh`.
Phone numbers (7+ digits, optionally with + ( ) - . or spaces) are read digit by digit in groups.
"""

from __future__ import annotations

import re
from collections.abc import Callable

NORMALIZER_VERSION = 1
"""Bump when the spoken form of any input changes (it is part of the prompt cache key)."""

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                  "nine": "ninth", "twelve": "twelfth"}

_PHONE = re.compile(r"(?<![\w.$¥])(\+?\(?\d[\d\s().\-]{5,}\d)(?![\w.]?\d)")
_MONEY_EN = re.compile(r"\$\s?(\d[\d,]*)(?:\.(\d{1,2}))?\b")
_TIME = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)(?:\s*([AaPp])\.?\s?[Mm]\.?)?(?!\d)")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_PERCENT = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s?%")
_NUMBER = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\d])")


def normalize(text: str, language: str) -> str:
    """Normalise `text` for speaking in `language` ("en" or "zh"; regional tags like en-US accepted)."""
    base = language.lower().split("-")[0].split("_")[0]
    if base == "en":
        return normalize_en(text)
    if base == "zh":
        return normalize_zh(text)
    raise ValueError(f"no text normaliser for language {language!r}; supported: en, zh")


# ---------------------------------------------------------------- English

def number_to_words_en(number: int) -> str:
    """Cardinal in words: 1234 -> 'one thousand two hundred thirty-four'."""
    if number < 0:
        return "minus " + number_to_words_en(-number)
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_to_words_en(rest)}" if rest else "")
    if number >= 1000 * _SCALES[0][0]:
        return digits_en(str(number))
    for scale, name in _SCALES:
        if number >= scale:
            head, rest = divmod(number, scale)
            return f"{number_to_words_en(head)} {name}" + (f" {number_to_words_en(rest)}" if rest else "")
    raise AssertionError("unreachable")


def ordinal_to_words_en(number: int) -> str:
    """21 -> 'twenty-first'."""
    words = number_to_words_en(number)
    head, sep, last = words.rpartition("-" if "-" in words.split(" ")[-1] else " ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def digits_en(digits: str) -> str:
    return " ".join(_ONES[int(d)] for d in digits if d.isdigit())


def normalize_en(text: str) -> str:
    text = _PHONE.sub(lambda m: _speak_phone(m, digits_en, "plus ", ", "), text)
    text = _MONEY_EN.sub(_money_en, text)
    text = _TIME.sub(_time_en, text)
    text = _ORDINAL.sub(lambda m: ordinal_to_words_en(int(m.group(1))), text)
    text = _PERCENT.sub(lambda m: f"{_number_en(m.group(1))} percent", text)
    text = _NUMBER.sub(lambda m: _number_en(m.group(0)), text)
    return text


def _number_en(token: str) -> str:
    whole, _, fraction = token.replace(",", "").partition(".")
    words = number_to_words_en(int(whole))
    return f"{words} point {digits_en(fraction)}" if fraction else words


def _money_en(match: re.Match[str]) -> str:
    dollars = int(match.group(1).replace(",", ""))
    cents = int((match.group(2) or "0").ljust(2, "0"))
    parts = []
    if dollars or not cents:
        parts.append(f"{number_to_words_en(dollars)} dollar{'s' if dollars != 1 else ''}")
    if cents:
        parts.append(f"{number_to_words_en(cents)} cent{'s' if cents != 1 else ''}")
    return " and ".join(parts)


def _time_en(match: re.Match[str]) -> str:
    hour, minute, meridiem = int(match.group(1)), int(match.group(2)), match.group(3)
    if meridiem:
        suffix = "AM" if meridiem.lower() == "a" else "PM"
        hour12 = hour % 12 or 12
    else:
        suffix = "AM" if hour < 12 else "PM"
        hour12 = hour % 12 or 12
    if minute == 0:
        minutes = ""
    elif minute < 10:
        minutes = f" oh {_ONES[minute]}"
    else:
        minutes = f" {number_to_words_en(minute)}"
    return f"{number_to_words_en(hour12)}{minutes} {suffix}"


# ---------------------------------------------------------------- shared

def _is_phone(candidate: str) -> bool:
    """A phone/account number: one run of 7+ digits, or 7-15 digits in groups of 2-5 (a leading
    +country code may be shorter), e.g. "555-123-4567", "(555) 123 4567", "+44 20 7946 0958"."""
    groups = [g for g in re.split(r"[\s().\-]+", candidate.strip()) if g]
    digit_count = sum(len(g.lstrip("+")) for g in groups)
    if len(groups) == 1:
        return groups[0].lstrip("+").isdigit() and digit_count >= 7
    body = groups[1:] if groups[0].startswith("+") else groups
    return 7 <= digit_count <= 15 and all(2 <= len(g) <= 5 for g in body)


def _speak_phone(match: re.Match[str], speak_digits: Callable[[str], str], plus: str, joiner: str) -> str:
    candidate = match.group(1)
    if not _is_phone(candidate):
        return match.group(0)  # left for the number rules
    groups = [g for g in re.split(r"[\s().\-]+", candidate.strip()) if g]  # "(555) 123-4567" -> 3 groups
    spoken = [(plus if group.startswith("+") else "") + speak_digits(group.lstrip("+")) for group in groups]
    return joiner.join(spoken)


# ---------------------------------------------------------------- Mandarin

_ZH_DIGITS = "零一二三四五六七八九"
_ZH_SMALL_UNITS = ("", "十", "百", "千")
_ZH_BIG_UNITS = ("", "万", "亿", "万亿")
_MONEY_ZH = re.compile(r"[¥￥]\s?(\d[\d,]*(?:\.\d+)?)")
_YEAR_ZH = re.compile(r"(\d{4})(?=年)")
_TIME_ZH = re.compile(r"(?<!\d)([01]?\d|2[0-3]):([0-5]\d)(?!\d)")


def number_to_chinese(number: int) -> str:
    """Cardinal in Chinese numerals: 105 -> 一百零五, 10000 -> 一万, 12 -> 十二."""
    if number < 0:
        return "负" + number_to_chinese(-number)
    if number == 0:
        return "零"
    groups: list[int] = []
    while number:
        number, group = divmod(number, 10000)
        groups.append(group)
    if len(groups) > len(_ZH_BIG_UNITS):
        raise ValueError("number too large to read in Chinese numerals")
    out = ""
    need_zero = False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            need_zero = bool(out)
            continue
        if out and (need_zero or group < 1000):
            out += "零"
        out += _four_digits_chinese(group) + _ZH_BIG_UNITS[index]
        need_zero = False
    if out.startswith("一十"):
        out = out[1:]  # 十二, not 一十二
    return out


def _four_digits_chinese(group: int) -> str:
    digits = [int(d) for d in f"{group:04d}"]
    out, zero_pending, started = "", False, False
    for position, digit in enumerate(digits):
        unit = _ZH_SMALL_UNITS[3 - position]
        if digit == 0:
            zero_pending = started
            continue
        if zero_pending:
            out += "零"
            zero_pending = False
        out += _ZH_DIGITS[digit] + unit
        started = True
    return out


def digits_zh(digits: str, one_as_yao: bool = True) -> str:
    """Digit by digit, as phone numbers are read (1 as 幺 by default)."""
    table = _ZH_DIGITS.replace("一", "幺") if one_as_yao else _ZH_DIGITS
    return "".join(table[int(d)] for d in digits if d.isdigit())


def normalize_zh(text: str) -> str:
    text = _PHONE.sub(lambda m: _speak_phone(m, digits_zh, "加", "，"), text)
    text = _MONEY_ZH.sub(_money_zh, text)
    text = _YEAR_ZH.sub(lambda m: digits_zh(m.group(1), one_as_yao=False), text)
    text = _TIME_ZH.sub(_time_zh, text)
    text = _PERCENT.sub(lambda m: "百分之" + _number_zh(m.group(1)), text)
    text = _NUMBER.sub(lambda m: _number_zh(m.group(0)), text)
    return text


def _number_zh(token: str) -> str:
    whole, _, fraction = token.replace(",", "").partition(".")
    words = number_to_chinese(int(whole))
    return f"{words}点{digits_zh(fraction, one_as_yao=False)}" if fraction else words


def _money_zh(match: re.Match[str]) -> str:
    """¥12.50 -> 十二元五角, ¥3.05 -> 三元零五分, ¥0.5 -> 五角."""
    whole, _, fraction = match.group(1).replace(",", "").partition(".")
    yuan, jiao, fen = int(whole), int((fraction + "00")[0]), int((fraction + "00")[1])
    spoken = number_to_chinese(yuan) + "元" if yuan or not (jiao or fen) else ""
    if jiao:
        spoken += _ZH_DIGITS[jiao] + "角"
    if fen:
        spoken += ("零" if yuan and not jiao else "") + _ZH_DIGITS[fen] + "分"
    return spoken


def _time_zh(match: re.Match[str]) -> str:
    hour, minute = int(match.group(1)), int(match.group(2))
    spoken = number_to_chinese(hour) + "点"
    if minute == 30:
        return spoken + "半"
    if minute:
        spoken += ("零" if minute < 10 else "") + number_to_chinese(minute) + "分"
    return spoken
