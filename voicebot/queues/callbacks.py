"""Callback tasks: the caller leaves the queue but keeps their place; an agent calls them back when free.

Pure scheduling: a task is due when `not_before` has passed and it is pending; the ACD offers due tasks to
free agents in the same order as live callers (priority, then original wait). A failed attempt (no answer)
is retried after `retry_after_s`, up to `max_attempts`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = [
    "CallbackTask",
    "InvalidCallbackNumber",
    "attempt_failed",
    "confirm_number",
    "is_due",
]

CallbackState = Literal["pending", "dialing", "failed"]
_NUMBER = re.compile(r"\+?[0-9]{3,20}")


class InvalidCallbackNumber(ValueError):
    """The number to call back is malformed or not allowed by configuration."""


@dataclass
class CallbackTask:
    id: str
    call_id: str
    number: str
    queue: str
    skills: list[str]
    priority: int
    context_id: str
    node: str
    requested_at: float
    enqueued_at: float  # the caller's original place in the queue
    not_before: float
    attempts: int = 0
    max_attempts: int = 3
    state: CallbackState = "pending"
    path: list[str] = field(default_factory=list)


def confirm_number(ani: str | None, keyed: str | None = None, allowed: Sequence[str] = ("*",)) -> str:
    """The number to call back: the keyed one if given, else the caller's ANI; checked against `allowed`.

    `allowed` holds fnmatch patterns (e.g. "+1555*", "0*"): callbacks go only where configuration
    permits, so a crafted number cannot turn the callback into toll fraud.
    """
    raw = keyed if keyed else ani
    if not raw:
        raise InvalidCallbackNumber("no number to call back: the caller's number is withheld and none was keyed")
    number = re.sub(r"[\s().-]", "", raw)
    if number.startswith("sip:"):
        number = number[4:].split("@", 1)[0]
    if not _NUMBER.fullmatch(number):
        raise InvalidCallbackNumber(f"{raw!r} is not a phone number (digits with an optional leading '+')")
    if not any(fnmatch.fnmatchcase(number, pattern) for pattern in allowed):
        raise InvalidCallbackNumber(f"calling back {number} is not allowed by the callback number patterns")
    return number


def is_due(task: CallbackTask, now: float) -> bool:
    return task.state == "pending" and task.not_before <= now


def attempt_failed(task: CallbackTask, now: float, retry_after_s: float = 300.0) -> CallbackTask:
    """The caller did not answer the callback: retry later, or give up after max_attempts."""
    attempts = task.attempts + 1
    if attempts >= task.max_attempts:
        return replace(task, attempts=attempts, state="failed")
    return replace(task, attempts=attempts, state="pending", not_before=now + retry_after_s)
