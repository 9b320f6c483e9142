"""QualityAlert: one breach of a live quality rule, whatever raised it (a phrase or disclaimer rule, a timed rule).

The one type from the rule to its readers: the checks return it, the call's event bus carries it (the call record
keeps it as a ``quality`` event, the server pushes it to the supervisor desktops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["QualityAlert"]


@dataclass(frozen=True)
class QualityAlert:
    """One breach: its kind (a quality.PENALTY key), when, the policy and rule, a readable detail, who caused it."""

    kind: str
    at: float
    policy: str
    rule: str
    detail: str
    speaker: str | None = None

    def entry(self) -> dict[str, Any]:
        """The call record's event: {"t", "event": "quality", kind, rule, policy, speaker, detail}."""
        return {"t": self.at, "event": "quality", "kind": self.kind, "rule": self.rule, "policy": self.policy,
                "speaker": self.speaker, "detail": self.detail}
