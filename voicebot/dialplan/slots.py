"""Slot values from what the caller said or keyed, by slot type. Pure functions.

NLU entities are preferred (they understand "twenty five dollars" or "next Tuesday"); plain text and keys are
parsed here as a fallback so digits, yes/no, choices and patterns work without any NLU.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from voicebot.dialplan.matching import code_key
from voicebot.dialplan.schema import AskSpec, ChoiceOption

__all__ = ["GRAMMAR_ENTITY", "entity_types", "extract_slot", "validate_slot"]

GRAMMAR_ENTITY = "grammar"  # Heard entity: the value the recogniser matched against the listen's grammar

_DEFAULT_ENTITIES = {
    "digits": ("digits", "number"),
    "number": ("number",),
    "money": ("money", "amount", "number"),
    "date": ("date",),
    "time": ("time",),
    "yes_no": (),
    "choice": (),
    "text": (),
    "pattern": (),
}

_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
    "零": "0", "〇": "0", "洞": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3", "四": "4",
    "五": "5", "六": "6", "七": "7", "八": "8", "九": "9",
}
_YES = {"yes", "yeah", "yep", "yup", "correct", "right", "sure", "ok", "okay", "affirmative", "true",
        "是", "是的", "对", "对的", "好", "好的", "没错", "可以", "嗯"}
_NO = {"no", "nope", "nah", "wrong", "incorrect", "negative", "false", "不", "不是", "不对", "错", "错了", "不要"}
_YES |= {"alright", "absolutely", "definitely", "certainly", "yea", "ya", "行", "是啊", "对啊", "好啊", "确认", "没问题"}
_NO |= {"not", "never", "don't", "dont", "不用", "不用了", "别", "算了", "没有"}
# Said as a whole phrase they answer yes/no (the words alone do not: "go", "do", "good")
_YES_PHRASES = ("go ahead", "please do", "do it", "sounds good", "of course", "all right", "that's it",
                "that is it", "that's correct", "that is correct")
_NO_PHRASES = ("no thanks", "not now", "do not", "not right", "not correct", "not it")
_UNSURE = ("don't know", "dont know", "not sure", "no idea", "不知道", "不确定", "不清楚")
_HANZI_YES_START = ("是", "对", "好", "嗯", "可以", "没错", "行")
_HANZI_NO_START = ("不", "别", "没有", "算了")
_YES_INTENTS = {"affirm", "yes", "confirm"}
_NO_INTENTS = {"deny", "no", "reject"}


def entity_types(ask: AskSpec) -> tuple[str, ...]:
    """The NLU entity types that can fill this slot, most specific first."""
    if ask.entity:
        return (ask.entity,)
    return (ask.slot, *_DEFAULT_ENTITIES[ask.type])


def extract_slot(
    ask: AskSpec,
    *,
    text: str | None = None,
    keys: str | None = None,
    intent: str | None = None,
    entities: Mapping[str, Any] | None = None,
) -> Any | None:
    """The slot's value from one input, or None when the input does not answer the question."""
    if keys is not None:
        return _from_keys(ask, keys)
    if entities and entities.get(GRAMMAR_ENTITY) is not None:  # heard against this ask's grammar: the surest
        value = validate_slot(ask, entities[GRAMMAR_ENTITY])
        if value is not None:
            return value
    for entity_type in entity_types(ask):
        if entities and entity_type in entities:
            value = validate_slot(ask, entities[entity_type])
            if value is not None:
                return value
    if ask.type == "yes_no" and intent in _YES_INTENTS | _NO_INTENTS:
        return intent in _YES_INTENTS
    if ask.type == "choice" and intent in (ask.options or {}):
        return intent
    if text is None or not text.strip():
        return None
    return _from_text(ask, text.strip())


def validate_slot(ask: AskSpec, value: Any) -> Any | None:
    """Coerce an entity's value to the slot type, or None when it does not fit (wrong length, not an option)."""
    if value is None:
        return None
    if ask.type == "digits":
        digits = str(value).replace(" ", "")
        return digits if digits.isdigit() and _length_ok(ask, digits) else None
    if ask.type == "number":
        return _number(value)
    if ask.type == "money":
        if isinstance(value, Mapping):
            return dict(value)
        return _number(value)
    if ask.type == "yes_no":
        return value if isinstance(value, bool) else _yes_no(str(value))
    if ask.type == "choice":
        return _choice(ask, str(value))
    if ask.type == "pattern":
        return _pattern(ask, str(value))
    if ask.type == "text":
        text = str(value).strip()
        return text if text and _length_ok(ask, text) else None
    return value  # date, time: the NLU's normalised value


def _from_keys(ask: AskSpec, keys: str) -> Any | None:
    keys = keys.rstrip("#")
    if not keys:
        return None
    if ask.type == "yes_no":
        return {"1": True, "2": False}.get(keys)
    if ask.type == "choice":
        for name, option in (ask.options or {}).items():
            if isinstance(option, ChoiceOption) and option.dtmf == keys:
                return name
        return None
    if ask.type == "money":
        return _number(keys.replace("*", "."))
    if ask.type == "date" and re.fullmatch(r"\d{8}", keys):
        return _date(keys[:4], keys[4:6], keys[6:])
    if ask.type == "time" and re.fullmatch(r"\d{4}", keys):
        return _time(int(keys[:2]), int(keys[2:]))
    if ask.type in ("date", "time"):
        return None  # anything but YYYYMMDD / HHMM is not a date or time: no match, the caller is asked again
    if ask.type == "text":
        return None
    if not keys.isdigit():
        return None
    return validate_slot(ask, keys)


def _from_text(ask: AskSpec, text: str) -> Any | None:
    if ask.type == "digits":
        return validate_slot(ask, _spoken_digits(text))
    if ask.type == "number":
        match = re.search(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
        return _number(match.group(0)) if match else None
    if ask.type == "money":
        match = re.search(r"\d+(?:\.\d{1,2})?", text.replace(",", ""))
        return _number(match.group(0)) if match else None
    if ask.type == "date":
        match = re.search(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", text)
        return _date(*match.groups()) if match else None
    if ask.type == "time":
        return _time_text(text)
    return validate_slot(ask, text)


def _spoken_digits(text: str) -> str:
    """'one two 3 4' -> '1234'; '幺二三四' -> '1234'; other words break nothing, they are skipped."""
    out = []
    for token in re.findall(r"\d|[a-zA-Z]+|[^\sa-zA-Z\d]", text.lower()):
        if token.isdigit():
            out.append(token)
        elif token in _DIGIT_WORDS:
            out.append(_DIGIT_WORDS[token])
    return "".join(out)


def _length_ok(ask: AskSpec, value: str) -> bool:
    if ask.length is not None and len(value) != ask.length:
        return False
    if ask.min_length is not None and len(value) < ask.min_length:
        return False
    return not (ask.max_length is not None and len(value) > ask.max_length)


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        number = float(str(value).replace(",", ""))
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+|[^\sa-z\d,.!?，。！？]+", text.lower())


def _yes_no(text: str) -> bool | None:
    """True/False when the words answer a yes-or-no question ("yes, please cancel it", "go ahead", "对，取消吧",
    "that's not right"), None when they do not or say both."""
    lowered = text.lower().strip(" .!?。！？")
    if lowered in _YES:
        return True
    if lowered in _NO:
        return False
    if any(phrase in lowered for phrase in _UNSURE):
        return None
    padded = f" {' '.join(_words(lowered))} "
    if any(f" {phrase} " in padded for phrase in _NO_PHRASES):
        return False
    words = set(_words(lowered))
    yes = bool(words & _YES) or any(f" {phrase} " in padded for phrase in _YES_PHRASES)
    no = bool(words & _NO)
    if yes != no:
        return yes
    if not yes and lowered[:1] >= "\u3400":  # Mandarin: the answer leads ("好的，帮我取消", "不是这个")
        if lowered.startswith(_HANZI_NO_START):
            return False
        if lowered.startswith(_HANZI_YES_START):
            return True
    return None


def _choice(ask: AskSpec, text: str) -> str | None:
    lowered = text.lower()
    for name, option in (ask.options or {}).items():
        phrases = option.say if isinstance(option, ChoiceOption) else option
        for phrase in [name, *phrases]:
            phrase = phrase.lower()
            if phrase.isascii():
                if re.search(r"\b" + re.escape(phrase) + r"\b", lowered):
                    return name
            elif phrase in lowered:
                return name
    return None


def _pattern(ask: AskSpec, text: str) -> str | None:
    """The answer as the pattern wants it: as said, upper-cased, without spaces/dashes, or spelled out
    ("D E F four five six" -> DEF456); else a whole word of a longer sentence ("it's CA981 please"), never a piece
    of a longer code (U857 is not read out of XU8571)."""
    regex = re.compile(ask.pattern or "")
    for candidate in (text, text.upper(), re.sub(r"[\s-]", "", text).upper(), code_key(text)):
        if candidate and regex.fullmatch(candidate):
            return candidate
    for candidate in (text, text.upper()):
        for match in regex.finditer(candidate):
            before = candidate[match.start() - 1] if match.start() > 0 else " "
            after = candidate[match.end()] if match.end() < len(candidate) else " "
            if not (before.isalnum() or after.isalnum()):
                return match.group(0)
    return None


def _date(year: str, month: str, day: str) -> str | None:
    y, m, d = int(year), int(month), int(day)
    if not (1 <= m <= 12 and 1 <= d <= 31):
        return None
    return f"{y:04d}-{m:02d}-{d:02d}"


def _time(hour: int, minute: int) -> str | None:
    return f"{hour:02d}:{minute:02d}" if 0 <= hour < 24 and 0 <= minute < 60 else None


def _time_text(text: str) -> str | None:
    match = re.search(r"\b(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?", text.lower())
    if not match or (match.group(2) is None and match.group(3) is None):
        return None
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    suffix = (match.group(3) or "").replace(".", "")
    if suffix == "pm" and hour < 12:
        hour += 12
    elif suffix == "am" and hour == 12:
        hour = 0
    return _time(hour, minute)
