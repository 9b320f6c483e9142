"""Mask personal data in text, nested objects and log records — written and spoken forms, English and Chinese.

    redactor = Redactor()
    redactor.redact("card 4111 1111 1111 1111, mail a.b@example.com")
    # -> "card [CARD ****1111], mail [EMAIL]"
    redactor.redact("my PIN is four eight two one", sensitive=["4821"])   # -> "my PIN is [REDACTED]"
    redactor.redact_obj({"slots": {"pin": "4821"}, "text": "..."}, sensitive_keys={"pin"})

Output format (stable, greppable, idempotent — redacting twice changes nothing):
    [CARD ****1234]  payment card (Luhn-checked, 13-19 digits, first digit 2-6); the last four stay, as PCI DSS
                     allows; `Redactor(keep_card_last4=False)` writes plain [CARD]
    [CN_ID]          Chinese resident ID (18 characters, valid birth date, ISO 7064 MOD 11-2 check, 'X' allowed)
    [SSN]            US social security number: written 123-45-6789 / 123 45 6789, or 9 digits after "social"/"SSN"
    [PHONE]          "+" / "plus" then 8-15 digits (E.164); US 10 digits (NANP, optional leading 1);
                     Chinese mobile 1[3-9]xxxxxxxxx (optional 86)
    [EMAIL]          written, or spoken "john dot smith at example dot com"
    [PHONE]          also UK / Chinese national numbers with the trunk 0: 020 7946 0958, 0755-12345678
    [NUMBER]         a number that fails its checksum but is personal by length or context (pii_context.py):
                     12+ digits (an ASR-garbled card or ID), 6+ digits after "account", "card", "ID"...,
                     or said with scale words ("110 quadrillion 105 trillion ..."); not after "order",
                     "tracking", "ISBN"...
    [DOB]            a date after "date of birth", "born on", "DOB", "出生日期"
    [DIGITS n]       keyed (DTMF) digits under the keys digits/dtmf/keyed_digits in redact_obj, unless the
                     Redactor was built with show_keyed_digits=True
    [SRTP_KEY]       an SDES master key (the base64 after "inline:" in an SDP a=crypto line, RFC 4568)
    [REDACTED]       a value of a slot marked sensitive (passed in), values under sensitive keys in redact_obj,
                     and 3-12 digits after "PIN", "passcode", "security code", "密码"...

Numbers are found as *runs* of digit atoms: written digit groups, English digit words (zero/oh/one..nine,
"double five", "triple zero") and Chinese digits (零〇幺一二两三..九), joined by spaces, dashes, dots, brackets,
or commas between spoken words. A run (or, failing that, its longest sub-run) is classified by the rules above.
Hard negatives are kept: a bare 10/11-digit number right after "order", "booking", "tracking", "flight", "订单"...
is not a phone unless written with "+" or brackets; digits glued to letters (UA857, AB1234...) are codes; amounts
with thousands commas never join into one run.
Values of sensitive slots shorter than 3 characters are not masked (they would hit every "1" in the text).
"""

from __future__ import annotations

import bisect
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from voicebot.compliance.pii_context import (
    LONG_RUN_DIGITS,
    Cues,
    dob_spans,
    is_national_phone,
    scale_number_spans,
)
from voicebot.nlu.numbers import EN_SPOKEN_DIGITS, REPEAT_WORDS, ZH_SPOKEN_DIGITS

__all__ = [
    "DEFAULT_SENSITIVE_KEYS",
    "IDENTIFIER_KEYS",
    "KEYED_DIGIT_KEYS",
    "Finding",
    "RedactingLogFilter",
    "Redactor",
    "clip_obj",
    "clip_text",
    "cn_id_valid",
    "install_log_redaction",
    "luhn_valid",
    "mask_keyed",
    "redact",
    "redact_obj",
]

REDACTED = "[REDACTED]"

DEFAULT_SENSITIVE_KEYS = frozenset({
    "password", "passwd", "secret", "token", "api_key", "apikey", "authorization", "pin", "cvv", "cvc",
    "card_number", "pan", "ssn", "id_number", "password_hash", "token_hash",
})
"""Keys whose values redact_obj replaces wholesale (matched case-insensitively)."""

IDENTIFIER_KEYS = frozenset({
    "call_id", "callid", "context_id", "dialog_id", "tag", "from_tag", "to_tag", "local_tag", "remote_tag",
    "branch", "path", "recording_path", "node", "request_id", "trace_id",
})
"""Keys whose string values are identifiers, not PII text: kept as they are so logs, call records, audit entries
and recordings stay correlatable (RFC 3261's own Call-ID a84b4c76e66710@pc33.atlanta.com looks like an e-mail)."""

KEYED_DIGIT_KEYS = frozenset({"digits", "dtmf", "keyed_digits"})
"""Keys holding digits a caller keyed (or an NLU digits entity): masked as [DIGITS n] by default."""


# ------------------------------------------------------------------------------------------ checksums


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment cards."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def cn_id_valid(number: str) -> bool:
    """An 18-character Chinese resident ID: region, plausible birth date, ISO 7064 MOD 11-2 check character."""
    if len(number) != 18 or not number[:17].isdigit() or number[0] == "0":
        return False
    year, month, day = int(number[6:10]), int(number[10:12]), int(number[12:14])
    if not (1800 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= 31):
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == number[17].upper()


def _ssn_valid(d: str) -> bool:
    area, group, serial = d[:3], d[3:5], d[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _nanp(d: str) -> bool:
    return len(d) == 10 and d[0] in "23456789" and d[3] in "23456789"


def _cn_mobile(d: str) -> bool:
    return len(d) == 11 and d[0] == "1" and d[1] in "3456789"


# --------------------------------------------------------------------------------------------- atoms

_EN_DIGITS = EN_SPOKEN_DIGITS  # the shared digit words (voicebot.nlu.numbers)
_ZH_DIGITS = ZH_SPOKEN_DIGITS
_ATOM = re.compile(
    r"(?P<num>\d+)(?P<x>[Xx](?![A-Za-z]))?"
    r"|(?P<word>\b(?:" + "|".join(sorted(_EN_DIGITS, key=len, reverse=True)) + r")\b)"
    r"|(?P<mult>\b(?:" + "|".join(REPEAT_WORDS) + r")\b)"
    r"|(?P<zh>[" + "".join(_ZH_DIGITS) + r"])"
    r"|(?P<plus>\+|\bplus\b)"
    r"|(?P<xw>\b[Xx]\b)",
    re.IGNORECASE,
)
_GAP = re.compile(r"[ \t\u3000]*(?:[-–.()/][ \t\u3000]*){0,2}")
_WORD_GAP = re.compile(r"[ \t\u3000]*[,，、]?[ \t\u3000]*")
_NEGATIVE_CONTEXT = re.compile(
    r"(order|confirmation|reference|\bref\b|tracking|booking|invoice|flight|ticket|serial|parcel|"
    r"订单|单号|航班|编号|运单|快递|流水号)[^.!?。！？]{0,24}$",
    re.IGNORECASE,
)
_SSN_CONTEXT = re.compile(r"(social security|\bsocial\b|\bssn\b|社会安全号)[^.!?。！？]{0,40}$", re.IGNORECASE)
# Every pattern applied to caller-controlled text is bounded (RFC 5321 limits: local part 64, label 63): an
# unbounded `[...]+@` retried at each of 60k start positions took seconds on one long Call-ID (issue 21.1).
_SDES_KEY = re.compile(r"(?<=inline:)[A-Za-z0-9+/]{16,}={0,2}")
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}"
    r"(?![A-Za-z0-9-])"
)
_SPOKEN_EMAIL = re.compile(
    r"\b[a-z0-9]{1,64}(?:[ \t]{1,3}(?:dot|underscore|dash|hyphen)[ \t]{1,3}[a-z0-9]{1,64}){0,6}[ \t]{1,3}at[ \t]{1,3}"
    r"[a-z0-9]{1,63}(?:[ \t]{1,3}dot[ \t]{1,3}[a-z0-9]{1,63}){0,6}"
    r"[ \t]{1,3}dot[ \t]{1,3}(?:com|net|org|edu|gov|io|cn|co|uk|de|fr|jp|info|biz)\b",
    re.IGNORECASE,
)
_MAX_SUBRUN_ATOMS = 40
_CLEAN_CACHE_TEXT_CHARS = 256
_CLEAN_CACHE_ENTRIES = 8192


@dataclass(frozen=True)
class Finding:
    """One piece of personal data: its kind (CARD, CN_ID, SSN, PHONE, EMAIL, SENSITIVE) and span in the text."""

    kind: str
    start: int
    end: int
    last4: str = ""


@dataclass
class _Atom:
    start: int
    end: int
    digits: str  # digits this atom stands for ('' for plus; the factor for a multiplier)
    kind: str  # num, word, zh, plus, mult
    x_suffix: bool = False


def _atoms(text: str) -> list[_Atom]:
    atoms: list[_Atom] = []
    for match in _ATOM.finditer(text):
        start, end = match.span()
        if match.group("num") is not None:
            glued = (start > 0 and text[start - 1].isascii() and text[start - 1].isalpha()) or (
                end < len(text) and text[end].isascii() and text[end].isalpha()
            )
            if glued:  # UA857, AB1234, 3rd: a code or an ordinal, never part of a number run
                atoms.append(_Atom(start, end, "", "code"))
                continue
            digits = "".join(str(unicodedata.decimal(c)) for c in match.group("num"))
            atoms.append(_Atom(start, end, digits, "num", match.group("x") is not None))
        elif match.group("word") is not None:
            atoms.append(_Atom(start, end, _EN_DIGITS[match.group("word").lower()], "word"))
        elif match.group("zh") is not None:
            atoms.append(_Atom(start, end, _ZH_DIGITS[match.group("zh")], "zh"))
        elif match.group("mult") is not None:
            atoms.append(_Atom(start, end, str(REPEAT_WORDS[match.group("mult").lower()]), "mult"))
        elif match.group("xw") is not None:  # a spoken check character "X" ends an ID number
            if atoms and atoms[-1].kind in ("num", "word", "zh") and not atoms[-1].x_suffix:
                atoms[-1] = _Atom(atoms[-1].start, end, atoms[-1].digits, atoms[-1].kind, True)
        else:
            atoms.append(_Atom(start, end, "", "plus"))
    return atoms


def _joined(text: str, left: _Atom, right: _Atom) -> bool:
    """May two neighbouring atoms belong to one number?"""
    if left.kind == "code" or right.kind == "code" or left.x_suffix or right.kind == "plus":
        return False
    gap = text[left.end:right.start]
    if not gap:
        return True
    if _GAP.fullmatch(gap):
        return True
    spoken = left.kind in ("word", "zh") or right.kind in ("word", "zh", "mult")
    return spoken and _WORD_GAP.fullmatch(gap) is not None


def _runs(text: str) -> list[list[_Atom]]:
    runs: list[list[_Atom]] = []
    current: list[_Atom] = []
    for atom in _atoms(text):
        if current and _joined(text, current[-1], atom):
            current.append(atom)
        else:
            if current:
                runs.append(current)
            current = [atom]
    if current:
        runs.append(current)
    return [run for run in runs if sum(len(a.digits) for a in run if a.kind != "mult") >= 3]


def _run_digits(run: list[_Atom]) -> tuple[str, bool, list[int]] | None:
    """(digit string, starts with plus, written group lengths) — None when the atoms do not form a number."""
    digits: list[str] = []
    groups: list[int] = []
    plus = False
    repeat = 1
    for index, atom in enumerate(run):
        if atom.kind == "plus":
            if index:
                return None
            plus = True
        elif atom.kind == "mult":
            repeat = int(atom.digits)
        elif atom.kind == "code":
            return None
        else:
            if repeat > 1:
                digits.append(atom.digits[0] * (repeat - 1))
                repeat = 1
            digits.append(atom.digits)
            if atom.kind == "num":
                groups.append(len(atom.digits))
            if atom.x_suffix:
                if index != len(run) - 1:
                    return None
                digits.append("X")
    if repeat > 1:
        return None
    return "".join(digits), plus, groups


# ------------------------------------------------------------------------------------------ Redactor


class Redactor:
    """Finds and masks personal data. Stateless after construction; safe to share between tasks and threads."""

    def __init__(self, *, keep_card_last4: bool = True, sensitive_keys: Iterable[str] = DEFAULT_SENSITIVE_KEYS,
                 show_keyed_digits: bool = False) -> None:
        self.keep_card_last4 = keep_card_last4
        self.sensitive_keys = frozenset(key.lower() for key in sensitive_keys)
        self.show_keyed_digits = show_keyed_digits
        self._clean: dict[tuple[str, str, tuple[str, ...]], None] = {}

    # ------------------------------------------------------------------ text

    def redact(self, text: str, sensitive: Iterable[str] = (), context: str = "") -> str:
        """`text` with every finding replaced by its label (see the module docstring). `context` is read as if
        it preceded the text (e.g. the field name "account_number").

        Short texts found clean are remembered (log field names, outcomes, hosts repeat on every call line), so
        they are not searched again; texts with personal data are never kept."""
        values = tuple(v for v in sensitive if isinstance(v, str))
        key = (text, context, values)
        cacheable = len(text) <= _CLEAN_CACHE_TEXT_CHARS
        if cacheable and key in self._clean:
            return text
        findings = self.findings(text, values, context)
        if not findings:
            if cacheable:
                if len(self._clean) >= _CLEAN_CACHE_ENTRIES:
                    self._clean.clear()  # bounded; rebuilt from the next lines
                self._clean[key] = None
            return text
        out: list[str] = []
        position = 0
        for finding in findings:
            out.append(text[position:finding.start])
            out.append(self._label(finding))
            position = finding.end
        out.append(text[position:])
        return "".join(out)

    def findings(self, text: str, sensitive: Iterable[str] = (), context: str = "") -> list[Finding]:
        """Non-overlapping findings in text order."""
        values = [v.strip() for v in sensitive if isinstance(v, str) and len(v.strip()) >= 3]
        digit_values = {d for d in (re.sub(r"[\s\-./:]", "", v) for v in values) if d.isdigit()}
        literal_values = [v for v in values if not re.sub(r"[\s\-./:]", "", v).isdigit()]
        found: list[Finding] = []
        taken_starts: list[int] = []  # the taken spans never overlap: sorted by start, they are sorted by end too
        taken_ends: list[int] = []

        def add(finding: Finding) -> None:
            index = bisect.bisect_right(taken_starts, finding.start)
            if index and taken_ends[index - 1] > finding.start:
                return
            if index < len(taken_starts) and taken_starts[index] < finding.end:
                return
            found.append(finding)
            taken_starts.insert(index, finding.start)
            taken_ends.insert(index, finding.end)

        for value in literal_values:
            for match in re.finditer(re.escape(value), text, re.IGNORECASE):
                add(Finding("SENSITIVE", *match.span()))
        if "inline:" in text:
            for match in _SDES_KEY.finditer(text):
                add(Finding("SRTP_KEY", *match.span()))
        if "@" in text:
            for match in _EMAIL.finditer(text):
                add(Finding("EMAIL", *match.span()))
        if " at " in text or " AT " in text or " At " in text:
            for match in _SPOKEN_EMAIL.finditer(text):
                add(Finding("EMAIL", *match.span()))
        prefix = f"{context.replace('_', ' ')}: " if context else ""
        for start, end in dob_spans(prefix + text):  # a field named date_of_birth is a cue too
            if start >= len(prefix):
                add(Finding("DOB", start - len(prefix), end - len(prefix)))
        for start, end in scale_number_spans(text):
            add(Finding("NUMBER", start, end))
        runs = _runs(text)
        cues = Cues.find(prefix + text) if runs else None  # the cue scan is the costly part: only for numbers
        for run in runs:
            assert cues is not None
            for finding in self._classify_run(text, run, digit_values, cues, len(prefix)):
                add(finding)
        found.sort(key=lambda f: f.start)
        return found

    def _classify_run(self, text: str, run: list[_Atom], digit_values: set[str], cues: Cues,
                      offset: int) -> list[Finding]:
        whole = self._classify(text, run, digit_values, cues, offset)
        if whole is not None:
            return [whole]
        if len(run) < 2:
            return []
        # Longest sub-run first, leftmost first: "1 3 8 ... and two more" still finds the phone inside.
        atoms = run[:_MAX_SUBRUN_ATOMS]
        results: list[Finding] = []
        chosen: list[tuple[int, int]] = []
        for size in range(len(atoms) - 1, 0, -1):
            for first in range(0, len(atoms) - size + 1):
                last = first + size
                if any(first < e and s < last for s, e in chosen):
                    continue
                finding = self._classify(text, atoms[first:last], digit_values, cues, offset)
                if finding is not None:
                    results.append(finding)
                    chosen.append((first, last))
        return results

    def _classify(self, text: str, run: list[_Atom], digit_values: set[str], cues: Cues,
                  offset: int) -> Finding | None:
        parsed = _run_digits(run)
        if parsed is None:
            return None
        digits, plus, groups = parsed
        start, end = run[0].start, run[-1].end
        if start > 0 and text[start - 1] == "(" and ")" in text[start:end]:
            start -= 1  # (415) 555-0123: the bracket belongs to the number
        if digits in digit_values or (any(len(v) >= 4 and v in digits for v in digit_values)):
            return Finding("SENSITIVE", start, end)
        length = len(digits)
        if length == 18 and (cn_id_valid(digits) or (digits[17] in "Xx" and digits[:17].isdigit())):
            return Finding("CN_ID", start, end)
        if not digits.isdigit():
            return None
        before = text[max(0, start - 48):start]
        context = cues.kind_before(offset + start)
        if context == "SECRET" and 3 <= length <= 12 and not plus:
            return Finding("SENSITIVE", start, end)
        if length < 8:
            return Finding("NUMBER", start, end) if context == "ACCOUNT" and length >= 6 else None
        if plus:
            return Finding("PHONE", start, end) if 8 <= length <= 15 and digits[0] != "0" else None
        if 13 <= length <= 19 and digits[0] in "23456" and luhn_valid(digits):
            return Finding("CARD", start, end, digits[-4:])
        formatted = groups in ([3, 3, 4], [1, 3, 3, 4], [3, 4, 4], [2, 3, 4, 4]) and (
            "(" in text[start:end] or "-" in text[start:end] or "." in text[start:end]
        )
        phone = (
            _nanp(digits) or (length == 11 and digits[0] == "1" and _nanp(digits[1:]))
            or _cn_mobile(digits) or (length == 13 and digits.startswith("86") and _cn_mobile(digits[2:]))
        )
        if phone and (formatted or not _NEGATIVE_CONTEXT.search(before)):
            return Finding("PHONE", start, end)
        if length == 9 and _ssn_valid(digits) and (groups == [3, 2, 4] or _SSN_CONTEXT.search(before)):
            return Finding("SSN", start, end)
        if context == "NOT_PERSONAL":
            return None
        if is_national_phone(digits):
            return Finding("PHONE", start, end)
        if context == "ACCOUNT" or length >= LONG_RUN_DIGITS:
            return Finding("NUMBER", start, end)
        return None

    def _label(self, finding: Finding) -> str:
        if finding.kind == "CARD":
            return f"[CARD ****{finding.last4}]" if self.keep_card_last4 else "[CARD]"
        if finding.kind == "SENSITIVE":
            return REDACTED
        return f"[{finding.kind}]"

    # --------------------------------------------------------------- objects

    def redact_obj(self, obj: Any, sensitive: Iterable[str] = (), sensitive_keys: Iterable[str] = ()) -> Any:
        """A redacted copy of nested dicts/lists/tuples: strings (and long integers) masked, values under
        sensitive keys (defaults plus `sensitive_keys`, e.g. the names of sensitive slots) replaced by [REDACTED].
        """
        values = [v for v in sensitive if isinstance(v, str)]
        keys = self.sensitive_keys | {k.lower() for k in sensitive_keys}
        return self._obj(obj, values, keys)

    def _obj(self, obj: Any, values: list[str], keys: frozenset[str]) -> Any:
        if isinstance(obj, str):
            return self.redact(obj, values)
        if isinstance(obj, Mapping):
            out: dict[Any, Any] = {}
            for key, value in obj.items():
                lowered = key.lower() if isinstance(key, str) else ""
                if lowered in keys and value not in (None, "", [], {}):
                    out[key] = REDACTED
                elif lowered in IDENTIFIER_KEYS and isinstance(value, str):
                    out[key] = value
                elif lowered in KEYED_DIGIT_KEYS and isinstance(value, (str, int)) and not isinstance(value, bool) \
                        and not self.show_keyed_digits:
                    out[key] = mask_keyed(str(value))
                elif isinstance(value, str) and lowered:
                    out[self.redact(key, values)] = self.redact(value, values, context=key)
                else:
                    out[self.redact(key, values) if isinstance(key, str) else key] = self._obj(value, values, keys)
            return out
        if isinstance(obj, list):
            return [self._obj(item, values, keys) for item in obj]
        if isinstance(obj, tuple):
            return tuple(self._obj(item, values, keys) for item in obj)
        if isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) >= 10**7:
            text = str(obj)
            masked = self.redact(text, values)
            return obj if masked == text else masked
        return obj


def mask_keyed(keys: str) -> str:
    """Keyed (DTMF) input as stored: one key (a menu choice) stays, longer input becomes [DIGITS n]."""
    return keys if len(keys) <= 1 else f"[DIGITS {len(keys)}]"


_DEFAULT = Redactor()


def redact(text: str, sensitive: Iterable[str] = ()) -> str:
    """Redact with the default Redactor."""
    return _DEFAULT.redact(text, sensitive)


def redact_obj(obj: Any, sensitive: Iterable[str] = (), sensitive_keys: Iterable[str] = ()) -> Any:
    """redact_obj with the default Redactor."""
    return _DEFAULT.redact_obj(obj, sensitive, sensitive_keys)


# ------------------------------------------------------------------------------------------- logging

_STANDARD_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


MAX_LOGGED_FIELD_CHARS = 2048
"""Longest string a log field keeps: a 60 KB Call-ID or display name is clipped before redaction and output."""
MAX_LOGGED_MESSAGE_CHARS = 8192


def clip_text(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more chars]"


def clip_obj(obj: Any, limit: int = MAX_LOGGED_FIELD_CHARS) -> Any:
    """A copy of nested dicts/lists/tuples with every string (keys too) clipped to `limit` characters."""
    if isinstance(obj, str):
        return clip_text(obj, limit)
    if isinstance(obj, Mapping):
        return {clip_obj(k, limit): clip_obj(v, limit) for k, v in obj.items()}
    if isinstance(obj, list):
        return [clip_obj(item, limit) for item in obj]
    if isinstance(obj, tuple):
        return tuple(clip_obj(item, limit) for item in obj)
    return obj


class RedactingLogFilter(logging.Filter):
    """Masks personal data in a log record before any handler formats it: the message (args merged in), every
    `extra=` field (e.g. voicebot's `fields` mapping), exception and stack text. Strings are first clipped
    (MAX_LOGGED_FIELD_CHARS, MAX_LOGGED_MESSAGE_CHARS) so caller-controlled text cannot make logging slow.

    The formatted exception is stored in `record.exc_text` and `record.exc_info` cleared, so formatters must
    print `exc_text` (logging.Formatter does). `sensitive_values` is a callable giving the current sensitive slot
    values (e.g. from the call registry); it is called once per record.
    """

    def __init__(
        self,
        redactor: Redactor | None = None,
        sensitive_values: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        super().__init__()
        self.redactor = redactor or _DEFAULT
        self.sensitive_values = sensitive_values
        self._formatter = logging.Formatter()

    def _redact_message(self, message: str, values: list[str]) -> str:
        """Free text is redacted as text; a JSON object message (audit events) field by field, so its
        identifier fields stay intact."""
        data = _json_object(message)
        if data is None:
            return self.redactor.redact(message, values)
        return json.dumps(self.redactor.redact_obj(data, values), ensure_ascii=False)

    def filter(self, record: logging.LogRecord) -> bool:
        values = list(self.sensitive_values()) if self.sensitive_values is not None else []
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = self._redact_message(clip_text(message, MAX_LOGGED_MESSAGE_CHARS), values)
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_RECORD_FIELDS:
                setattr(record, key, self.redactor.redact_obj(clip_obj(value), values))
        if record.exc_info:
            record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redactor.redact(clip_text(record.exc_text, MAX_LOGGED_MESSAGE_CHARS), values)
        if record.stack_info:
            record.stack_info = self.redactor.redact(clip_text(record.stack_info, MAX_LOGGED_MESSAGE_CHARS), values)
        return True


def _json_object(text: str) -> dict[str, Any] | None:
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def install_log_redaction(
    redactor: Redactor | None = None,
    logger: logging.Logger | None = None,
    sensitive_values: Callable[[], Iterable[str]] | None = None,
) -> RedactingLogFilter:
    """Add one RedactingLogFilter to every handler of `logger` (default: root). Call after handlers are set up.

    Handler filters (not logger filters) are used because records from child loggers reach the root's handlers
    without passing the root logger's own filters.
    """
    target = logger or logging.getLogger()
    log_filter = RedactingLogFilter(redactor, sensitive_values)
    for handler in target.handlers:
        if not any(isinstance(f, RedactingLogFilter) for f in handler.filters):
            handler.addFilter(log_filter)
    return log_filter
