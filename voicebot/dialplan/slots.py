"""Slot values from what the caller said or keyed. Pure functions; each type's rules live in its module of
voicebot.dialplan.slot_types.

NLU entities are preferred (they understand "twenty five dollars" or "next Tuesday"); plain text and keys are
parsed by the slot's type as a fallback so digits, yes/no, choices and patterns work without any NLU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voicebot.dialplan import slot_types
from voicebot.dialplan.schema import AskSpec

__all__ = ["GRAMMAR_ENTITY", "entity_types", "extract_slot", "validate_slot"]

GRAMMAR_ENTITY = "grammar"  # Heard entity: the value the recogniser matched against the listen's grammar


def entity_types(ask: AskSpec) -> tuple[str, ...]:
    """The NLU entity types that can fill this slot, most specific first."""
    if ask.entity:
        return (ask.entity,)
    return (ask.slot, *slot_types.get(ask.type).entities)


def extract_slot(
    ask: AskSpec,
    *,
    text: str | None = None,
    keys: str | None = None,
    intent: str | None = None,
    entities: Mapping[str, Any] | None = None,
) -> Any | None:
    """The slot's value from one input, or None when the input does not answer the question."""
    kind = slot_types.get(ask.type)
    if keys is not None:
        keys = keys.rstrip("#")
        return kind.from_keys(ask, keys) if keys else None
    if entities and entities.get(GRAMMAR_ENTITY) is not None:  # heard against this ask's grammar: the surest
        value = kind.validate(ask, entities[GRAMMAR_ENTITY])
        if value is not None:
            return value
    for entity_type in entity_types(ask):
        if entities and entity_type in entities:
            value = validate_slot(ask, entities[entity_type])
            if value is not None:
                return value
    if intent is not None:
        value = kind.from_intent(ask, intent)
        if value is not None:
            return value
    if text is None or not text.strip():
        return None
    return kind.from_text(ask, text.strip())


def validate_slot(ask: AskSpec, value: Any) -> Any | None:
    """Coerce an entity's value to the slot type, or None when it does not fit (wrong length, not an option)."""
    return None if value is None else slot_types.get(ask.type).validate(ask, value)
