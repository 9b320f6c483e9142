"""Slot types: one module per type, found by the registry — adding a type is one file (and one test).

Each module here defines ``SLOT_TYPE = <a SlotType subclass instance>`` and owns everything about its type: the
name used in ``ask: {type: ...}``, its NLU entities, default input and keyed length, which ask settings it takes
(length, options, pattern...), keyed and spoken (English and Chinese) parsing, the read-back text, whether a value
may end the turn early, the recognition grammar and its JSON Schema fragment. Spoken digits are read with
voicebot.nlu.numbers, the one table of digit words.

Another package adds types without touching this one: an entry point in the group ``voicebot.slot_types``
(pyproject: ``[project.entry-points."voicebot.slot_types"] postcode = "acme.slots.postcode"``) naming a module
with SLOT_TYPE, or the object itself; ``register()`` adds one at run time.
"""

from voicebot.dialplan.slot_types._base import SETTINGS, SlotType, is_zh, length_ok, to_number
from voicebot.dialplan.slot_types._registry import (
    ENTRY_POINT_GROUP,
    check_ask,
    find,
    get,
    names,
    register,
    registered,
    reload,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "SETTINGS",
    "SlotType",
    "check_ask",
    "find",
    "get",
    "is_zh",
    "length_ok",
    "names",
    "register",
    "registered",
    "reload",
    "to_number",
]
