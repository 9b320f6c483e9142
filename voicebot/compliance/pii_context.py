"""Context rules for personal numbers that fail their checksums: what ASR actually writes on real calls.

Whisper inserts, drops or mishears digits ("41111111111111111111", a card with one wrong digit), renders a
spoken ID as "110 quadrillion 105 trillion 199 billion ..." and a keyed card may carry a wrong check digit:
checksum rules alone pass all of these raw. These pure functions judge a number by its length and the words
before it; Redactor (redact.py) applies them. Every pattern is bounded (caller-controlled text, issue 21.1).
"""

from __future__ import annotations

import re

__all__ = [
    "LONG_RUN_DIGITS",
    "context_kind",
    "dob_spans",
    "is_national_phone",
    "scale_number_spans",
]

LONG_RUN_DIGITS = 12
"""A run this long is an identifier (card, account, national ID) unless the words before it say otherwise."""

_STOP = r"[^.!?。！？]"
# Words after which a number is personal: account / card / ID numbers, and secrets (PINs, codes).
_SECRET = re.compile(
    r"(\bpin\b|\bpin (?:code|number)\b|passcode|pass code|password|security code|\bcvv\b|\bcvc\b|"
    r"verification code|one[- ]time code|\botp\b|密码|验证码|口令)" + _STOP + r"{0,24}$",
    re.IGNORECASE,
)
_ACCOUNT = re.compile(
    r"(account|\bacct\b|\ba/c\b|card|\biban\b|sort code|routing|member(?:ship)? (?:id|number)|customer (?:id|number)|"
    r"policy (?:id|number)|passport|licen[cs]e|national insurance|\bid number|\bid\b|identity|social security|"
    r"tax (?:id|number)|账号|账户|帐号|帐户|卡号|银行卡|身份证|护照|会员号|客户号)" + _STOP + r"{0,32}$",
    re.IGNORECASE,
)
_NOT_PERSONAL = re.compile(
    r"(order|confirmation|reference|\bref\b|tracking|booking|invoice|flight|ticket|serial|parcel|isbn|"
    r"timestamp|version|订单|单号|航班|编号|运单|快递|流水号)" + _STOP + r"{0,24}$",
    re.IGNORECASE,
)


def context_kind(before: str) -> str | None:
    """What the words just before a number make it: "SECRET", "ACCOUNT", "NOT_PERSONAL" or None.

    The nearest cue wins: "order ... no, my card number is" is an account number.
    """
    best: tuple[int, str] | None = None
    for kind, pattern in (("SECRET", _SECRET), ("ACCOUNT", _ACCOUNT), ("NOT_PERSONAL", _NOT_PERSONAL)):
        match = pattern.search(before)
        if match is not None and (best is None or match.start(1) > best[0]):
            best = (match.start(1), kind)
    return best[1] if best else None


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


def scale_number_spans(text: str) -> list[tuple[int, int]]:
    """Spans of numbers said with scale words that stand for a long digit string: "110 quadrillion 105
    trillion 199 billion ..." (how Whisper renders a spoken ID). Amounts stay: "3 thousand 4 hundred",
    "2 million", "5 billion" (one scale word below a trillion)."""
    spans = []
    for match in _SCALED.finditer(text):
        scales = _ANY_SCALE.findall(match.group())
        big = _BIG_SCALE.findall(match.group())
        if big and (len(scales) >= 2 or big[0].lower() != "billion"):
            spans.append(match.span())
    return spans
