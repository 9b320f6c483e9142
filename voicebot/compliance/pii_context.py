"""Context rules for personal numbers that fail their checksums: what ASR actually writes on real calls.

Whisper inserts, drops or mishears digits ("41111111111111111111", a card with one wrong digit), renders a
spoken ID as "110 quadrillion 105 trillion 199 billion ..." and a keyed card may carry a wrong check digit:
checksum rules alone pass all of these raw. These pure functions judge a number by its length and the words
before it; Redactor (redact.py) applies them. Every pattern is bounded (caller-controlled text, issue 21.1).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

__all__ = [
    "LONG_RUN_DIGITS",
    "Cues",
    "context_kind",
    "dob_spans",
    "is_national_phone",
    "scale_number_spans",
]

LONG_RUN_DIGITS = 12
"""A run this long is an identifier (card, account, national ID) unless the words before it say otherwise."""

# Words after which a number is personal (account / card / ID numbers, secrets such as PINs), or is not.
_CUE_WORDS = {
    "SECRET": r"\bpin (?:code|number)\b|\bpin\b|passcode|pass code|password|security code|\bcvv\b|\bcvc\b|"
              r"verification code|one[- ]time code|\botp\b|密码|验证码|口令",
    "ACCOUNT": r"account|\bacct\b|\ba/c\b|card|\biban\b|sort code|routing|member(?:ship)? (?:id|number)|"
               r"customer (?:id|number)|policy (?:id|number)|passport|licen[cs]e|national insurance|\bid number|"
               r"\bid\b|identity|social security|tax (?:id|number)|账号|账户|帐号|帐户|卡号|银行卡|身份证|护照|会员号|客户号",
    "NOT_PERSONAL": r"order|confirmation|reference|\bref\b|tracking|booking|invoice|flight|ticket|serial|parcel|"
                    r"isbn|timestamp|version|订单|单号|航班|编号|运单|快递|流水号",
}
_CUES = re.compile("|".join(f"(?P<{kind}>{words})" for kind, words in _CUE_WORDS.items()), re.IGNORECASE)
_WINDOW = {"SECRET": 24, "ACCOUNT": 32, "NOT_PERSONAL": 24}  # characters between the cue and the number
_SENTENCE_STOP = re.compile(r"[.!?。！？]")
_LOOKBACK = 96


@dataclass(frozen=True)
class Cues:
    """The context cues of one text, found in a single pass (a per-number regex search cost 40 µs each)."""

    text: str
    spans: tuple[tuple[int, int, str], ...]  # (start, end, kind) in text order
    starts: tuple[int, ...]

    @classmethod
    def find(cls, text: str) -> Cues:
        spans = tuple((m.start(), m.end(), str(m.lastgroup)) for m in _CUES.finditer(text))
        return cls(text, spans, tuple(span[0] for span in spans))

    def kind_before(self, position: int) -> str | None:
        """"SECRET", "ACCOUNT", "NOT_PERSONAL" or None for a number starting at `position`; the nearest cue
        wins ("order ... no, my card number is" is an account number), within its window and sentence."""
        index = bisect.bisect_left(self.starts, position)
        for start, end, kind in reversed(self.spans[max(0, index - 8):index]):
            if position - start > _LOOKBACK:
                break
            if end > position:
                continue
            gap = self.text[end:position]
            if len(gap) <= _WINDOW[kind] and not _SENTENCE_STOP.search(gap):
                return kind
        return None


def context_kind(before: str) -> str | None:
    """What the words at the end of `before` make a number that follows them (see Cues.kind_before)."""
    return Cues.find(before).kind_before(len(before))


def is_national_phone(digits: str) -> bool:
    """UK and Chinese national numbers written with the trunk prefix 0: 020 7946 0958, 07700 900123,
    010-12345678, 0755-12345678 (10-12 digits, a 0 then a non-zero area digit)."""
    return 10 <= len(digits) <= 12 and digits[0] == "0" and digits[1] != "0"


# ---------------------------------------------------------------------------------------- dates of birth

_MONTHS = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
           r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE = (
    r"(?:\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}|\d{4}[/.\-]\d{1,2}[/.\-]\d{1,2}"
    rf"|(?:the )?{_DAY}(?: of)? {_MONTHS},? \d{{4}}|{_MONTHS} (?:the )?{_DAY},? \d{{4}}"
    r"|\d{4}年\d{1,2}月\d{1,2}[日号]?)"
)
_DOB = re.compile(
    r"(?:date of birth|birth ?date|birthday|\bdob\b|\bd\.o\.b\.?|\bborn(?: on)?|出生日期|生日|出生于)"
    r"[ \t:：,是为]{0,6}(?:(?:is|was|on)[ \t]{1,3}){0,2}(" + _DATE + r")",
    re.IGNORECASE,
)


def dob_spans(text: str) -> list[tuple[int, int]]:
    """Spans of dates that follow a date-of-birth cue ("date of birth 05/03/1980", "born on 5 March 1980")."""
    return [match.span(1) for match in _DOB.finditer(text)]


# ------------------------------------------------------------------------------- numbers said with scales

_SMALL = (r"(?:\d{1,3}|zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
          r"fifteen|sixteen|seventeen|eighteen|nineteen|(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
          r"(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?)")
_GROUP = rf"{_SMALL}(?: hundred(?: (?:and )?{_SMALL})?)?"
_SCALE = r"(?:quintillion|quadrillion|trillion|billion|million|thousand)"
_SCALED = re.compile(
    rf"\b{_GROUP} {_SCALE}(?:,? (?:and )?{_GROUP}(?: {_SCALE})?){{0,8}}\b",
    re.IGNORECASE,
)
_BIG_SCALE = re.compile(r"quintillion|quadrillion|trillion|billion", re.IGNORECASE)
_ANY_SCALE = re.compile(_SCALE, re.IGNORECASE)


# Whisper also writes a spoken ID or card as one big number with thousands separators: 110,105,199,491,231,002.
_GROUPED = re.compile(r"(?<![\d,.$€£¥])\d{1,3}(?:,\d{3}){3,8}(?![\d,]|\.\d)")
_CURRENCY_AFTER = re.compile(r"\s?(?:dollars?|usd|eur|euros?|pounds?|gbp|yen|jpy|yuan|rmb|cny|元|块)", re.IGNORECASE)


def scale_number_spans(text: str) -> list[tuple[int, int]]:
    """Spans of numbers said with scale words, or written with 4+ thousands separators, that stand for a long
    digit string: "110 quadrillion 105 trillion 199 billion ...", "110,105,199,491,231,002" (how Whisper
    renders a spoken ID). Amounts stay: "3 thousand 4 hundred", "2 million", "5 billion" (one scale word below a
    trillion), "$52,345,678.90", "1,234,567,890 yen"."""
    spans = [match.span() for match in _GROUPED.finditer(text)
             if not _CURRENCY_AFTER.match(text, match.end())]
    for match in _SCALED.finditer(text):
        scales = _ANY_SCALE.findall(match.group())
        big = _BIG_SCALE.findall(match.group())
        if big and (len(scales) >= 2 or big[0].lower() != "billion"):
            spans.append(match.span())
    return spans
