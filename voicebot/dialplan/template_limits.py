"""Bounds for sandboxed dialplan templates: no template may build a huge value or output (memory bombs such as
``{{ 'a' * 300000000 }}``) or loop without end.

Operators and calls that can multiply sizes are checked *before* they run (the sandbox intercepts them), so a
refused template never allocates its result; filters are limited to a harmless list; output is streamed and cut at
:data:`MAX_OUTPUT_CHARS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError

MAX_VALUE_CHARS = 20_000
"""Longest string or list a template may build (operators, string methods, filters)."""
MAX_OUTPUT_CHARS = 20_000
"""Longest text one template may render."""
MAX_INT_BITS = 4_096
"""Largest integer a template may compute (``9 ** 9 ** 9`` is refused, not computed)."""

SAFE_FILTERS = frozenset({
    "abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float", "format", "int",
    "join", "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse",
    "round", "select", "selectattr", "sort", "string", "title", "tojson", "trim", "truncate", "unique", "upper",
    "urlencode", "wordcount",
    "mentioned",  # voicebot.dialplan.matching: a sub-list of its input (the records a caller named)
})
"""Filters a dialplan template may use; the others (center, indent, wordwrap, sum, batch, ...) can amplify."""

_SIZED = (str, bytes, list, tuple)
_FORMAT_WIDTH = re.compile(r"%[-#0 +]*\d{5,}|%[-#0 +]*\d*\.\d{5,}|\{[^{}]*:[^{}]*\d{5,}[^{}]*\}")


class TemplateLimitExceeded(SecurityError):
    """A template tried to build or output more than the bounds allow."""


def _refuse(what: str) -> TemplateLimitExceeded:
    return TemplateLimitExceeded(f"{what} exceeds the template size limit ({MAX_VALUE_CHARS} characters)")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_size(value: Any, what: str = "value") -> Any:
    if isinstance(value, _SIZED) and len(value) > MAX_VALUE_CHARS:
        raise _refuse(what)
    if _is_int(value) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimitExceeded(f"{what} exceeds the template integer limit ({MAX_INT_BITS} bits)")
    return value


def check_format(template: Any, args: Any) -> None:
    """A printf/format string may not pad to huge widths (``'%300000000s'``, ``'{:>300000000}'``)."""
    if isinstance(template, str) and _FORMAT_WIDTH.search(template):
        raise _refuse("format width")
    for arg in args if isinstance(args, (tuple, list)) else (args,):
        if _is_int(arg) and arg > MAX_VALUE_CHARS and "*" in str(template):
            raise _refuse("format width")


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse ``*``, ``**``, ``+`` and ``%`` whose result would exceed the bounds, before computing it."""
    if operator == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, _SIZED) and _is_int(count) and len(seq) * max(count, 0) > MAX_VALUE_CHARS:
                raise _refuse("repeated value")
        if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateLimitExceeded(f"product exceeds the template integer limit ({MAX_INT_BITS} bits)")
    elif operator == "**":
        if _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1 \
                and max(left.bit_length(), 1) * right > MAX_INT_BITS:
            raise TemplateLimitExceeded(f"power exceeds the template integer limit ({MAX_INT_BITS} bits)")
        if isinstance(left, float) or isinstance(right, float):
            return
    elif operator == "+":
        if isinstance(left, _SIZED) and isinstance(right, _SIZED) and len(left) + len(right) > MAX_VALUE_CHARS:
            raise _refuse("concatenation")
    elif operator == "%" and isinstance(left, str):
        check_format(left, right)


_STR_METHODS_WITH_WIDTH = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})


def check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse string methods that would pad, repeat or replace beyond the bounds, before calling them."""
    owner = getattr(obj, "__self__", None)
    if owner is None:  # the sandbox's str.format wrapper
        owner = getattr(getattr(obj, "__wrapped__", None), "__self__", None)
    name = getattr(obj, "__name__", "")
    if not isinstance(owner, str):
        return
    values = [*args, *kwargs.values()]
    if name in _STR_METHODS_WITH_WIDTH:
        if any(_is_int(v) and v > MAX_VALUE_CHARS for v in values):
            raise _refuse(f"str.{name} width")
        if name == "expandtabs" and owner.count("\t") * max([v for v in values if _is_int(v)] or [8]) \
                > MAX_VALUE_CHARS:
            raise _refuse("str.expandtabs")
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1])
    elif name == "join" and args:
        _check_join(owner, args[0])
    elif name in ("format", "format_map"):
        check_format(owner, values)


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        hits = len(text) + 1 if old == "" else text.count(old)
        if len(text) + hits * len(new) > MAX_VALUE_CHARS:
            raise _refuse("replacement")


def _check_join(separator: Any, items: Any) -> None:
    if isinstance(items, (list, tuple)):
        total = sum(len(i) if isinstance(i, _SIZED) else 16 for i in items)
        if total + max(len(items) - 1, 0) * len(str(separator)) > MAX_VALUE_CHARS:
            raise _refuse("join")


def bounded_concat(parts: Any) -> str:
    """Join template output (``{% set %}`` blocks) or ``~`` operands, stopping once past the size limit."""
    out: list[str] = []
    size = 0
    for part in parts:
        text = str(part)
        size += len(text)
        if size > MAX_VALUE_CHARS:
            raise _refuse("joined text")
        out.append(text)
    return "".join(out)


class BoundedCodeGenerator(CodeGenerator):
    """Compiles ``a ~ b`` to :func:`bounded_concat` (Jinja's own join is not interceptable)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def bounded_filters(filters: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """The safe filters, with argument checks for those that can grow a value and a size check on every result."""
    chosen = {name: f for name, f in filters.items() if name in SAFE_FILTERS}

    def guard(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def bounded(*args: Any, **kwargs: Any) -> Any:
            values = [a for a in args if not hasattr(a, "environment")]  # skip eval-context/environment args
            if name == "replace" and len(values) >= 3:
                _check_replace(str(values[0]), values[1], values[2])
            elif name == "join" and values:
                _check_join(kwargs.get("d", values[1] if len(values) > 1 else ""), list(values[0])
                            if isinstance(values[0], (list, tuple)) else values[0])
            elif name == "format" and values:
                check_format(values[0], values[1:])
            return check_size(func(*args, **kwargs), f"{name} filter result")

        for attribute in ("jinja_pass_arg",):  # keep how Jinja passes context/eval-context/environment
            if hasattr(func, attribute):
                setattr(bounded, attribute, getattr(func, attribute))
        bounded.__name__ = getattr(func, "__name__", name)
        return bounded

    return {name: guard(name, func) for name, func in chosen.items()}


def check_structure(ast: nodes.Template) -> None:
    """Refuse constructs that can run without bound: macros, call blocks, recursive or nested loops, unknown
    filters."""
    for block in ast.find_all((nodes.Macro, nodes.CallBlock)):
        raise SecurityError(f"{type(block).__name__.lower()} is not allowed in dialplan templates")
    for loop in ast.find_all(nodes.For):
        if loop.recursive:
            raise SecurityError("recursive loops are not allowed in dialplan templates")
        if any(True for _ in loop.find_all(nodes.For)):
            raise SecurityError("nested loops are not allowed in dialplan templates")
    for node in ast.find_all(nodes.Filter):
        if node.name not in SAFE_FILTERS:
            raise SecurityError(f"filter {node.name!r} is not allowed in dialplan templates; allowed: "
                                + ", ".join(sorted(SAFE_FILTERS)))
