"""Semantic (early) endpointing: may the turn end before the usual end-of-speech silence? Pure functions.

The session has a speculative recognition of the caller's words after a short silence. `decide` says whether that
text already answers the current listen: an intent the listen routes (local or global) recognised with enough
confidence, or a value of the expected slot that cannot grow any more (its type is `closed` and the value `is_final`: digits of
the required length, yes/no, a choice, a date, a time, a pattern). Open-ended answers (free text, numbers, amounts:
"twenty" may become "twenty five") never end early. `resolve` merges the dialplan's defaults with a listen's override.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from voicebot.dialplan import slot_types
from voicebot.dialplan.schema import AskSpec, EarlyEndpointSpec
from voicebot.dialplan.slots import extract_slot

__all__ = ["EarlyEndpoint", "Verdict", "decide", "resolve"]

MIN_ASR_CONFIDENCE = 0.5  # a recognition this unsure never ends a turn early


@dataclass(frozen=True)
class EarlyEndpoint:
    """What completes the current listen, carried by the Listen action to the session."""

    silence_ms: int = 300
    min_confidence: float = 0.7
    intents: frozenset[str] = frozenset()
    slot: AskSpec | None = None

    def __post_init__(self) -> None:
        if self.silence_ms <= 0:
            raise ValueError(f"silence_ms must be > 0, got {self.silence_ms}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be within 0..1, got {self.min_confidence}")


@dataclass(frozen=True)
class Verdict:
    complete: bool
    reason: str


def resolve(default: EarlyEndpointSpec, override: EarlyEndpointSpec | bool | None) -> EarlyEndpointSpec | None:
    """The settings in force for one listen (None: off). A mapping override changes only the fields it names."""
    if override is False:
        return None
    if isinstance(override, EarlyEndpointSpec):
        fields = {name: getattr(override, name) for name in override.model_fields_set}
        default = default.model_copy(update=fields)
    elif override is True:
        default = default.model_copy(update={"enabled": True})
    return default if default.enabled else None


def decide(rule: EarlyEndpoint | None, *, text: str, asr_confidence: float, intent: str | None = None,
           intent_confidence: float = 0.0, entities: Mapping[str, Any] | None = None) -> Verdict:
    """Does this (speculative) recognition complete the listen described by ``rule``?"""
    if rule is None:
        return Verdict(False, "early endpointing off")
    if not text.strip():
        return Verdict(False, "nothing recognised")
    if asr_confidence < MIN_ASR_CONFIDENCE:
        return Verdict(False, f"recognition unsure ({asr_confidence:.2f})")
    in_scope = intent is not None and intent in rule.intents
    if in_scope and intent_confidence >= rule.min_confidence:
        return Verdict(True, f"intent {intent}")
    slot = rule.slot
    kind = slot_types.get(slot.type) if slot is not None else None
    if slot is not None and kind is not None and kind.closed:
        value = extract_slot(slot, text=text, intent=intent, entities=entities)
        if value is not None and kind.is_final(slot, value):
            return Verdict(True, f"{slot.type} slot complete")
        if value is not None:
            return Verdict(False, kind.growing)
    if in_scope:
        return Verdict(False, f"intent {intent} below {rule.min_confidence:.2f} ({intent_confidence:.2f})")
    if slot is None or kind is None:
        return Verdict(False, "no in-scope intent")
    if not kind.closed:
        return Verdict(False, f"{slot.type} answers are open-ended")
    return Verdict(False, f"no {slot.type} value yet")
