"""Spoken and written numbers, English and Chinese, as pure functions over text — the one place they are read.

Digit words: `EN_DIGIT_WORDS` (zero, oh, one..nine, niner), `ZH_DIGIT_CHARS` (零〇, 一幺, 二两, 三..九), plus words
that name a digit only inside a digit string (`DIGIT_STRING_ONLY`: the letter o, the radio zero 洞) and the repeat
words ("double five", "triple zero"). Slots, NLU entities, PII redaction, code matching and the recognition grammars
all read digits with these tables; `read_digits` is the digit-string reader, `EN_DIGIT_NAMES` / `ZH_DIGIT_NAMES`
say a digit.
English works on word tokens: `tokenize_en` gives tokens with character spans, `read_chunks` reads a run of
number words / numerals as a list of well-formed chunks ("twelve fifty" -> [12, 50], "four five six" -> [4, 5, 6],
"two thousand and five" -> [2005]). Callers (entities, times, money) decide what a run of chunks means.
Chinese: `zh_number` converts one numeral string ("一千零五", "两百五", "3千", "十二点五", "一二三四").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "Chunk",
    "DIGIT_STRING_ONLY",
    "EN_DIGIT_NAMES",
    "EN_DIGIT_WORDS",
    "EN_SPOKEN_DIGITS",
    "REPEAT_WORDS",
    "SPOKEN_DIGITS",
    "Token",
    "ZH_DIGIT_CHARS",
    "ZH_DIGIT_NAMES",
    "ZH_NUMERAL",
    "ZH_SPOKEN_DIGITS",
    "chunks_to_digits",
    "ordinal_value",
    "read_chunks",
    "read_digits",
    "tokenize_en",
    "written_number",
    "zh_number",
]


# ---------------------------------------------------------------------------------------- digit words

EN_DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
"""How each digit is said in English (index = digit)."""
ZH_DIGIT_NAMES = "零一二三四五六七八九"
"""How each digit is written in Chinese numerals (index = digit); phone numbers say 幺 for 一."""
EN_DIGIT_WORDS: dict[str, str] = {
    **{name: str(digit) for digit, name in enumerate(EN_DIGIT_NAMES)}, "oh": "0", "niner": "9",
}
"""English words that are a digit wherever they stand ("oh four", radio "niner")."""
ZH_DIGIT_CHARS: dict[str, str] = {
    **{char: str(digit) for digit, char in enumerate(ZH_DIGIT_NAMES)}, "〇": "0", "幺": "1", "两": "2",
}
"""Chinese characters that are a digit (幺 is 1 on the phone, 两 is 2 before a measure or unit)."""
DIGIT_STRING_ONLY: dict[str, str] = {"o": "0", "洞": "0"}
"""Digits only inside a digit string: the letter o ("one o two"), the radio zero 洞 ("幺洞洞"). Alone they are a
letter or a word (山洞), so number readers and codes (where O is a letter) leave them out."""
EN_SPOKEN_DIGITS: dict[str, str] = {**EN_DIGIT_WORDS, "o": "0"}
ZH_SPOKEN_DIGITS: dict[str, str] = {**ZH_DIGIT_CHARS, "洞": "0"}
SPOKEN_DIGITS: dict[str, str] = {**EN_SPOKEN_DIGITS, **ZH_SPOKEN_DIGITS}
"""Every word or character that names a digit inside a digit string, English and Chinese."""
REPEAT_WORDS: dict[str, int] = {"double": 2, "triple": 3}
"""'double five' -> 55, 'triple zero' -> 000."""

_DIGIT_TOKEN = re.compile(r"\d|[a-z]+|[^\sa-z\d]", re.IGNORECASE)
MAX_DIGIT_TEXT = 2000  # a digit string is read from this much text at most (the text is caller-controlled)


def read_digits(text: str, *, letters: bool = False) -> str:
    """The digit string said or written in `text`: 'one two 3 4' -> '1234', '幺二三四' -> '1234',
    'double five oh' -> '550', 'one o two' -> '102'. Other words are skipped.

    letters=True reads a spelled code: capital letters are kept and O is a letter there, not zero
    ('A one two, three zero zero one' -> 'A123001')."""
    out: list[str] = []
    tokens = _DIGIT_TOKEN.findall(text[:MAX_DIGIT_TEXT])
    table = {**EN_DIGIT_WORDS, **ZH_SPOKEN_DIGITS} if letters else SPOKEN_DIGITS
    repeat = 1
    for token in tokens:
        lowered = token.lower()
        if token.isdecimal():
            digit = str(unicodedata.decimal(token))
        elif lowered in table:
            digit = table[lowered]
        elif lowered in REPEAT_WORDS:
            repeat = REPEAT_WORDS[lowered]
            continue
        else:
            if letters and token.isascii() and token.isalpha() and token.isupper():
                out.append(token)
            repeat = 1
            continue
        out.append(digit * repeat)
        repeat = 1
    return "".join(out)


# ------------------------------------------------------------------------------------ English numbers

@dataclass(frozen=True)
class Token:
    text: str  # lower-cased
    start: int
    end: int


_TOKEN = re.compile(
    r"[ap]\.m\.?|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:st|nd|rd|th)?|[a-z]+(?:'[a-z]+)?|[^\sa-z\d]",
    re.IGNORECASE,
)


def tokenize_en(text: str) -> list[Token]:
    """Word, numeral and punctuation tokens with spans into `text`."""
    return [Token(m.group().lower(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


UNITS = {word: int(digit) for word, digit in EN_DIGIT_WORDS.items()}
TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}
SCALES = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}
_WRITTEN = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_WRITTEN_ORDINAL = re.compile(r"(\d{1,2})(?:st|nd|rd|th)")


@dataclass(frozen=True)
class Chunk:
    """One well-formed number inside a run; `first:last` are token indexes (inclusive:exclusive)."""

    value: int | float
    first: int
    last: int
    digits: str  # the digit string as said: "oh four" -> "04"; "" when not a plain integer


MAX_WRITTEN_CHARS = 40
"""A longer digit string is no number to compute with (int() refuses 4300+ digits)."""


def written_number(text: str) -> int | float | None:
    """'1,234.50' -> 1234.5, '42' -> 42; None if `text` is not a numeral (or longer than MAX_WRITTEN_CHARS)."""
    if len(text) > MAX_WRITTEN_CHARS or not _WRITTEN.fullmatch(text):
        return None
    plain = text.replace(",", "")
    return float(plain) if "." in plain else int(plain)


def ordinal_value(tokens: list[Token], index: int) -> tuple[int, int] | None:
    """An ordinal day number at `index` ("3rd", "third", "twenty third") -> (value, next index)."""
    if index >= len(tokens):
        return None
    word = tokens[index].text
    written = _WRITTEN_ORDINAL.fullmatch(word)
    if written:
        return int(written.group(1)), index + 1
    if word in ORDINALS:
        return ORDINALS[word], index + 1
    if word in TENS and index + 1 < len(tokens):
        following = tokens[index + 1].text
        if following in ORDINALS and ORDINALS[following] < 10:
            return TENS[word] + ORDINALS[following], index + 2
    return None


def _kind(word: str) -> str | None:
    if word in UNITS:
        return "unit"
    if word in TEENS:
        return "teen"
    if word in TENS:
        return "tens"
    if word == "hundred":
        return "hundred"
    if word in SCALES:
        return "scale"
    if word in REPEAT_WORDS:
        return "repeat"
    if written_number(word) is not None:
        return "written"
    return None


class _ChunkBuilder:
    """Accumulates one chunk (total + current) following English number grammar."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.total = 0
        self.current: int | float = 0
        self.last_kind: str | None = None
        self.digits = ""
        self.last_scale = 10**12

    def accepts(self, kind: str, value: int | float) -> bool:
        last = self.last_kind
        if last is None:
            return True
        if kind == "unit":
            return last in ("tens", "hundred", "scale") and value != 0
        if kind in ("teen", "tens"):
            return last in ("hundred", "scale")
        if kind == "hundred":
            return last in ("unit", "teen", "tens", "written") and self.current < 100
        if kind == "scale":
            return last != "scale" and self.current > 0 and value < self.last_scale
        return False

    def add(self, kind: str, value: int | float, word: str) -> None:
        if kind == "hundred":
            self.current = (self.current or 1) * 100
        elif kind == "scale":
            self.total += (self.current or 1) * value
            self.current = 0
            self.last_scale = int(value)
        else:
            self.current += value
        self.digits = word if kind in ("unit", "written") and self.last_kind is None else ""
        self.last_kind = kind

    def chunk(self, last: int) -> Chunk:
        value = self.total + self.current
        if isinstance(value, float) and value.is_integer() and "." not in self.digits:
            value = int(value)
        digits = self.digits if self.digits else (str(value) if isinstance(value, int) else "")
        return Chunk(value, self.first, last, digits)


MAX_NUMBER_TOKENS = 32
"""Longest run of number words read at once: readers start at every token, so an unbounded run made entity
extraction quadratic (120 s on "1 1 1 ..." x 2000)."""
MAX_ZH_NUMERAL_CHARS = 32
"""Longer Chinese numerals are not numbers (int() of 20000 digits raised; float() of 4000 overflowed)."""


def read_chunks(tokens: list[Token], index: int) -> tuple[list[Chunk], int]:
    """Read the run of number tokens starting at `index`; return its chunks and the index after it.

    'a hundred', 'one hundred and five', 'double five' (-> 5, 5), 'twelve point five' are understood;
    no chunks means there is no number at `index`.
    """
    chunks: list[Chunk] = []
    builder: _ChunkBuilder | None = None
    i = index
    stop = min(len(tokens), index + MAX_NUMBER_TOKENS)
    while i < stop:
        word = tokens[i].text
        nxt = tokens[i + 1].text if i + 1 < len(tokens) else ""
        if word == "a" and builder is None and nxt in ("hundred", "thousand", "million"):
            builder = _ChunkBuilder(i)
            builder.add("unit", 1, "")
            i += 1
            continue
        if word == "and" and builder is not None and builder.last_kind in ("hundred", "scale"):
            if _kind(nxt) in ("unit", "teen", "tens"):
                i += 1
                continue
            break
        if word == "point" and builder is not None and builder.last_kind != "scale" and nxt in UNITS:
            j = i + 1
            fraction = ""
            while j < len(tokens) and tokens[j].text in UNITS:
                fraction += str(UNITS[tokens[j].text])
                j += 1
            builder.current = builder.current + float("0." + fraction)
            builder.digits = ""
            builder.last_kind = "point"
            i = j
            continue
        kind = _kind(word)
        if kind is None:
            break
        if kind == "repeat":
            count = REPEAT_WORDS[word]
            if _kind(nxt) != "unit":
                break
            if builder is not None:
                chunks.append(builder.chunk(i))
                builder = None
            digit = UNITS[nxt]
            chunks.extend(Chunk(digit, i, i + 2, str(digit)) for _ in range(count))
            i += 2
            continue
        value: int | float
        if kind == "written":
            value = written_number(word)  # type: ignore[assignment]
            if builder is not None:
                chunks.append(builder.chunk(i))
            builder = _ChunkBuilder(i)
            builder.add("written", value, word.replace(",", "") if "." not in word else word)
            builder.last_kind = "written"
            i += 1
            continue
        value = (UNITS | TEENS | TENS | SCALES).get(word, 100)
        if builder is not None and not builder.accepts(kind, value):
            chunks.append(builder.chunk(i))
            builder = None
        if builder is None:
            if kind == "scale" and not chunks:
                break  # "thousand" alone is not a number
            builder = _ChunkBuilder(i)
        builder.add(kind, value, str(value) if kind == "unit" else "")
        i += 1
    if builder is not None:
        chunks.append(builder.chunk(i))
    end = chunks[-1].last if chunks else index
    return chunks, end


def chunks_to_digits(chunks: list[Chunk]) -> str | None:
    """Several small chunks read as one digit string ('twelve fifty' -> '1250'); None if not possible."""
    if not chunks or any(not c.digits or not c.digits.isdigit() for c in chunks):
        return None
    if len(chunks) > 1 and any(isinstance(c.value, float) or c.value >= 100 for c in chunks):
        return None
    return "".join(c.digits for c in chunks)


# ------------------------------------------------------------------------------------------- Chinese

_ZH_DIGITS = {char: int(digit) for char, digit in ZH_DIGIT_CHARS.items()}
_ZH_SMALL_UNITS = {"十": 10, "百": 100, "千": 1000}
_ZH_BIG_UNITS = {"万": 10_000, "亿": 100_000_000}
ZH_NUMERAL = "[0-9０-９" + "".join(ZH_DIGIT_CHARS) + "".join(_ZH_SMALL_UNITS) + "".join(_ZH_BIG_UNITS) + "]"


def _zh_integer(text: str) -> int | None:
    """'一千零五' -> 1005, '两百五' -> 250, '十二' -> 12, '3千' -> 3000, '一二三' -> None (use digits)."""
    total = 0
    section = 0
    number: int | None = None
    last_unit = 0
    previous = ""  # kind of the previous character: "digit", "zero", "unit"
    colloquial = False
    index = 0
    while index < len(text):
        char = text[index]
        if char.isdigit():
            j = index
            while j < len(text) and text[j].isdigit():
                j += 1
            if previous == "digit":
                return None
            number, colloquial, previous = int(text[index:j]), previous == "unit", "digit"
            index = j
            continue
        if char in _ZH_DIGITS:
            if previous == "digit" or (previous == "zero" and char == "零"):
                return None  # two bare digits in a row: a digit string, not a number
            number = _ZH_DIGITS[char]
            colloquial = previous == "unit"
            previous = "zero" if char in "零〇" else "digit"
        elif char in _ZH_SMALL_UNITS:
            unit = _ZH_SMALL_UNITS[char]
            section += (1 if number is None else number) * unit
            number, last_unit, previous = None, unit, "unit"
        elif char in _ZH_BIG_UNITS:
            unit = _ZH_BIG_UNITS[char]
            total = (total + section + (number or 0)) * unit
            section, number, last_unit, previous = 0, None, unit, "unit"
        else:
            return None
        index += 1
    if number is not None and colloquial and last_unit >= 100:
        number *= last_unit // 10  # colloquial: 两百五 = 250, 一万五 = 15000
    return total + section + (number or 0)


def zh_number(text: str) -> tuple[int | float, str | None] | None:
    """A Chinese (or mixed) numeral -> (value, digit string or None); None if not a numeral.

    Digit-by-digit strings ('一二三四', '幺零八六') give their digit string, e.g. (1234, '1234').
    """
    text = text.translate(_FULLWIDTH)
    if not text or len(text) > MAX_ZH_NUMERAL_CHARS:
        return None
    whole, point, fraction = text.partition("点")
    if point:
        integer = _zh_integer(whole) if whole else 0
        if integer is None or not fraction or any(c not in _ZH_DIGITS and not c.isdigit() for c in fraction):
            return None
        decimals = "".join(c if c.isdigit() else str(_ZH_DIGITS[c]) for c in fraction)
        return integer + float("0." + decimals), None
    if all(c in _ZH_DIGITS or c.isdigit() for c in text):
        digits = "".join(c if c.isdigit() else str(_ZH_DIGITS[c]) for c in text)
        return int(digits), digits
    value = _zh_integer(text)
    if value is None:
        return None
    return value, str(value)


_FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")
