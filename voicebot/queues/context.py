"""The call context handed to an agent: what the bot learned, so the caller never repeats themselves.

    ctx = CallContextRecord.new(call_id="c1", caller="+15550100", lang="en-US", now=now)
    ctx.add_turn("caller", "my card number is 4111 1111 1111 1111")   # stored masked
    headers = {"X-Voicebot-Call-Id": call_id_header(ctx.call_id), "User-to-User": user_to_user(ctx.context_id)}

Transcripts and slot values are masked before they are stored: `mask_pii` is the default masker (long digit
runs keep only their last 4 digits, e-mail addresses are hidden); sensitive slots are replaced entirely.
A stronger redactor (the compliance package) can be passed as `masker`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "CallContextRecord",
    "call_id_header",
    "context_id_from_user_to_user",
    "mask_pii",
    "new_context_id",
    "user_to_user",
]

_DIGIT_RUN = re.compile(r"(?:\d[ -]?){4,}\d")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}")  # bounded: linear on 60 KB
_CALL_ID = re.compile(r"[A-Za-z0-9.!%*_+`'~@:/-]{1,128}")  # RFC 3261 word characters, no quotes or brackets
_CONTEXT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def mask_pii(text: str) -> str:
    """Hide e-mail addresses and all but the last 4 digits of any run of 5+ digits."""
    text = _EMAIL.sub("[email]", text)

    def _digits(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        return "*" * (len(digits) - 4) + digits[-4:]

    return _DIGIT_RUN.sub(_digits, text)


def new_context_id() -> str:
    return "ctx_" + secrets.token_urlsafe(12)


@dataclass
class CallContextRecord:
    context_id: str
    call_id: str
    caller: str  # masked number
    lang: str
    created_at: float
    transcript: list[dict[str, Any]] = field(default_factory=list)  # {who, text, at}
    intents: list[str] = field(default_factory=list)
    slots: dict[str, str] = field(default_factory=dict)
    verified: bool | None = None  # None: not attempted
    profile: dict[str, Any] = field(default_factory=dict)
    queue_path: list[dict[str, Any]] = field(default_factory=list)  # {queue, at}

    @classmethod
    def new(
        cls, call_id: str, caller: str, lang: str, now: float, *, masker: Callable[[str], str] = mask_pii
    ) -> CallContextRecord:
        return cls(new_context_id(), call_id, masker(caller), lang, now)

    def add_turn(self, who: str, text: str, at: float = 0.0, *, masker: Callable[[str], str] = mask_pii) -> None:
        self.transcript.append({"who": who, "text": masker(text), "at": at})

    def set_slots(
        self, slots: dict[str, Any], sensitive: Iterable[str] = (), *, masker: Callable[[str], str] = mask_pii
    ) -> None:
        hidden = set(sensitive)
        for name, value in slots.items():
            self.slots[name] = "****" if name in hidden else masker(str(value))

    def entered_queue(self, queue: str, at: float) -> None:
        self.queue_path.append({"queue": queue, "at": at})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallContextRecord:
        return cls(**data)


def user_to_user(context_id: str) -> str:
    """The User-to-User header value carrying `context_id`: 'hex;encoding=hex', at most 128 hex characters."""
    if not _CONTEXT_ID.fullmatch(context_id):
        raise ValueError(f"context id {context_id!r} must be 1-64 characters of letters, digits, '_' or '-'")
    return context_id.encode("ascii").hex() + ";encoding=hex"


def context_id_from_user_to_user(value: str) -> str:
    """Inverse of `user_to_user`, for the agent side; raises ValueError on a malformed header."""
    data, _, params = value.partition(";")
    if params.replace(" ", "").lower() not in ("encoding=hex", "") or len(data) > 128:
        raise ValueError(f"unsupported User-to-User value {value!r}")
    try:
        context_id = bytes.fromhex(data).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"User-to-User value {value!r} is not hex-encoded ASCII") from None
    if not _CONTEXT_ID.fullmatch(context_id):
        raise ValueError(f"User-to-User carries no valid context id: {context_id!r}")
    return context_id


def call_id_header(call_id: str) -> str:
    """The X-Voicebot-Call-Id header value; the id must be a SIP word (no spaces, quotes, ';' or ',')."""
    if not _CALL_ID.fullmatch(call_id):
        raise ValueError(f"call id {call_id!r} cannot be sent as a SIP header token")
    return call_id
