"""Outcome of one softphone call: classification, exit code and the printed summary (pure logic)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

CallResult = Literal["answered", "failed", "rejected", "timeout"]
HangupSide = Literal["local", "remote"]

EXIT_OK = 0
EXIT_CALL_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3

# Final responses that mean "the callee (or its proxy) refused", as opposed to a transport/server failure.
_REJECT_CODES = frozenset({403, 404, 480, 486, 488, 600, 603, 604, 606})


def classify_result(*, answered: bool, status_code: int, timed_out: bool) -> CallResult:
    """Decide the call result from what happened.

    A call whose deadline expired is `timeout` even if it was answered (it did not end by itself
    or by --duration). An unanswered call is `rejected` for 4xx/6xx refusals, `timeout` for 408,
    and `failed` otherwise (5xx, transport errors, local errors).
    """
    if timed_out:
        return "timeout"
    if answered:
        return "answered"
    if status_code == 408:
        return "timeout"
    if status_code in _REJECT_CODES or 400 <= status_code < 500 or 600 <= status_code < 700:
        return "rejected"
    return "failed"


@dataclass
class CallSummary:
    """Everything the softphone reports about a finished call."""

    uri: str
    result: CallResult
    status_code: int
    reason: str
    duration: float
    digits_sent: str
    digits_received: str
    recorded_seconds: float | None
    recording_rms: float | None
    hangup: HangupSide | None
    error: str | None = None

    def exit_code(self) -> int:
        """0 for an answered call that ended normally; nonzero otherwise."""
        if self.result == "answered" and self.error is None:
            return EXIT_OK
        if self.result == "timeout":
            return EXIT_TIMEOUT
        return EXIT_CALL_FAILED

    def to_json(self) -> str:
        """One-line JSON object with every field."""
        return json.dumps(asdict(self), sort_keys=True)

    def to_text(self) -> str:
        """One human-readable summary line."""
        status = f"{self.status_code} {self.reason}" if self.status_code else (self.reason or "no response")
        parts = [f"call {self.result}: {status}".rstrip()]
        parts.append(f"duration {self.duration:.2f}s")
        if self.digits_sent:
            parts.append(f"digits sent {self.digits_sent!r}")
        if self.digits_received:
            parts.append(f"digits received {self.digits_received!r}")
        if self.recorded_seconds is not None:
            parts.append(f"recorded {self.recorded_seconds:.2f}s rms {self.recording_rms or 0.0:.4f}")
        if self.hangup is not None:
            parts.append(f"hangup by {self.hangup}")
        if self.error:
            parts.append(f"error: {self.error}")
        return ", ".join(parts)
