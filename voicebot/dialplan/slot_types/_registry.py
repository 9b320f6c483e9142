"""Which slot types exist: every module of this package, plus those other packages declare as entry points."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Mapping
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

from voicebot.dialplan.slot_types._base import SETTINGS, SlotType
from voicebot.yamlsrc import LocatedValueError

if TYPE_CHECKING:
    from voicebot.dialplan.schema import AskSpec

__all__ = ["ENTRY_POINT_GROUP", "check_ask", "find", "get", "names", "register", "registered", "reload"]

ENTRY_POINT_GROUP = "voicebot.slot_types"
"""Another package adds slot types by naming a module (or its SLOT_TYPE object) in this entry point group."""

_types: dict[str, SlotType] | None = None


def registered() -> Mapping[str, SlotType]:
    """Every slot type by name, sorted by name (discovered on first use)."""
    global _types
    if _types is None:
        found: dict[str, SlotType] = {}
        for info in sorted(pkgutil.iter_modules(_package_path()), key=lambda m: m.name):
            if not info.name.startswith("_"):
                _add(found, importlib.import_module(f"{__package__}.{info.name}"), f"{__package__}.{info.name}")
        for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
            _add(found, point.load(), f"entry point {point.name} = {point.value}")
        _types = dict(sorted(found.items()))
    return _types


def reload() -> None:
    """Discover the slot types again (after a plugin package was installed)."""
    global _types
    _types = None
    registered()


def register(slot_type: SlotType) -> None:
    """Add one slot type at run time (embedding code; modules and entry points are found by themselves)."""
    global _types
    types = dict(registered())
    _add(types, slot_type, type(slot_type).__module__)
    _types = dict(sorted(types.items()))


def names() -> tuple[str, ...]:
    return tuple(registered())


def find(name: str | None) -> SlotType | None:
    return registered().get(name or "")


def get(name: str) -> SlotType:
    """The slot type called `name`; an unknown name is an error naming the closest one."""
    kind = find(name)
    if kind is None:
        close = difflib.get_close_matches(name, names(), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"use one of: {', '.join(names())}"
        raise LocatedValueError(f"unknown slot type {name!r}", hint=hint)
    return kind


def check_ask(ask: AskSpec) -> None:
    """The ask gives what its type needs and nothing another type's (options on a digits ask...)."""
    kind = get(ask.type)
    for field, example in kind.required.items():
        if getattr(ask, field) in (None, "", {}, []):
            raise LocatedValueError(f"a {kind.name} slot needs {field}", hint=f"e.g. {example}")
    for field in SETTINGS:
        if field not in kind.settings and getattr(ask, field) is not None:
            users = [name for name, other in registered().items() if field in other.settings]
            raise LocatedValueError(f"{field} is only for {_either(users)}", loc=(field,),
                                    hint=f"remove it, or use type: {users[0]}" if users else "remove it")
    kind.check(ask)


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _add(types: dict[str, SlotType], found: Any, origin: str) -> None:
    slot_type = getattr(found, "SLOT_TYPE", None) if isinstance(found, ModuleType) else found
    if not isinstance(slot_type, SlotType):
        raise TypeError(f"{origin}: a slot type module defines SLOT_TYPE = <a SlotType instance>")
    if not slot_type.name.isidentifier():
        raise TypeError(f"{origin}: slot type name {slot_type.name!r} must be an identifier")
    if slot_type.name in types:
        raise TypeError(f"{origin}: slot type {slot_type.name!r} is defined twice")
    unknown = (slot_type.settings | set(slot_type.required)) - set(SETTINGS)
    if unknown:
        raise TypeError(f"{origin}: unknown ask settings {sorted(unknown)}; settings are {', '.join(SETTINGS)}")
    types[slot_type.name] = slot_type


def _package_path() -> list[str]:
    from voicebot.dialplan import slot_types

    return list(slot_types.__path__)
