"""Bounded JSON decoding for untrusted bodies and messages: nesting depth is checked before parsing.

json.loads recurses once per nesting level, so 10,000 '[' raise RecursionError (a 500 and a traceback per
request). :func:`loads_bounded` refuses such input with :class:`JsonBodyError`, a ValueError with a clear message:

    loads_bounded('{"token": "vbt_..."}')      # {'token': 'vbt_...'}
    loads_bounded("[" * 10_000)                # JsonBodyError: JSON nested deeper than 32 levels
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

__all__ = ["MAX_DEPTH", "JsonBodyError", "loads_bounded", "nesting_depth", "read_json"]

MAX_DEPTH = 32
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class JsonBodyError(ValueError):
    """The text is not acceptable JSON; the message says why."""


def nesting_depth(text: str, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects in ``text`` (brackets inside strings do not count)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    break
        elif token in "]}":
            depth -= 1
    return deepest


def loads_bounded(raw: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` for untrusted input: JsonBodyError for bad UTF-8, bad JSON or nesting beyond ``max_depth``."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    except UnicodeDecodeError as exc:
        raise JsonBodyError(f"body is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if nesting_depth(text, stop_above=max_depth) > max_depth:
        raise JsonBodyError(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except RecursionError:  # belt and braces: the depth check above should make this unreachable
        raise JsonBodyError(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise JsonBodyError(f"not valid JSON: {exc}") from None


async def read_json(request: web.Request, max_depth: int = MAX_DEPTH) -> Any:
    """The request's JSON body (at most the app's client_max_size bytes: 413 beyond), or JsonBodyError."""
    return loads_bounded(await request.read(), max_depth)
