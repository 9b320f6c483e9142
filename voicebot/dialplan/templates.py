"""Sandboxed Jinja templates and expressions for dialplans.

Templates read `caller`, `slots`, `vars`, `result`, `lang`, `value`, `position`, `minutes`, `call` (node,
dialplan, intent, `heard`: the caller's last words) and `item` (a record read back) and nothing of Python's
internals (`{{ ''.__class__ }}` raises `TemplateError`); the filter `mentioned(text, fields)` keeps the records a
caller named. A value that is exactly one `{{ expression }}` keeps its type (`"{{ 10 if caller.vip else 0 }}"` -> 10); anything else renders to text.
Sizes are bounded (voicebot.dialplan.template_limits): `{{ 'a' * 300000000 }}` fails validation and, should it
reach a call, is refused before anything is allocated.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any, cast

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from voicebot.dialplan.matching import mentioned
from voicebot.dialplan.template_limits import (
    MAX_OUTPUT_CHARS,
    BoundedCodeGenerator,
    TemplateLimitExceeded,
    bounded_concat,
    bounded_filters,
    check_binop,
    check_call,
    check_size,
    check_structure,
)

__all__ = [
    "KNOWN_NAMES",
    "TemplateError",
    "check_expression",
    "check_template",
    "evaluate",
    "is_template",
    "render",
    "slots_read",
    "condition_holds",
    "templates_in",
]

KNOWN_NAMES = frozenset({"caller", "slots", "vars", "result", "lang", "value", "position", "minutes", "call", "item"})
"""The names a dialplan template may read."""

_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*$", re.DOTALL)


class TemplateError(Exception):
    """A template that does not compile, reads an unknown name, or broke the sandbox at run time."""


class _Environment(SandboxedEnvironment):
    """Sandbox with forgiving undefined values (`caller.profile.name` is empty when there is no profile)
    that refuses, rather than silently blanks, any reach for Python internals, and bounds what templates build."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = BoundedCodeGenerator
    concat = staticmethod(bounded_concat)
    bounded_concat = staticmethod(bounded_concat)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        return check_size(super().call_binop(context, operator, left, right), f"result of {operator!r}")

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        check_call(obj, args, kwargs)
        return check_size(super().call(context, obj, *args, **kwargs), "call result")

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise jinja2.exceptions.SecurityError(
            f"access to attribute {attribute!r} of a {type(obj).__name__} is not allowed"
        )


_ENV = _Environment(
    undefined=jinja2.ChainableUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    finalize=lambda value: "" if value is None else value,  # a missing value reads as nothing, not "None"
)
_ENV.globals.clear()  # no range/dict/lipsum/cycler/joiner/namespace: data only
_ENV.globals.update({"len": len, "min": min, "max": max, "round": round, "int": int, "str": str})
_ENV.filters = bounded_filters(_ENV.filters)
# {{ caller.orders | mentioned(call.heard, ['item', 'item_zh']) }}: a sub-list of its input, it cannot grow a value
_ENV.filters["mentioned"] = mentioned


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


@lru_cache(maxsize=4096)
def _template(source: str) -> jinja2.Template:
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from None


@lru_cache(maxsize=4096)
def _expression(source: str) -> Any:
    try:
        return _ENV.compile_expression(source, undefined_to_none=False)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"expression syntax error: {exc.message}") from None


def _names(ast: nodes.Template) -> set[str]:
    return set(meta.find_undeclared_variables(ast)) - set(_ENV.globals)


def _check_names(ast: nodes.Template, allowed: frozenset[str]) -> None:
    for node in cast("Iterator[nodes.Getattr | nodes.Getitem]", ast.find_all((nodes.Getattr, nodes.Getitem))):
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(name, str) and name.startswith("_"):
            raise TemplateError(f"access to {name!r} is not allowed in templates (sandbox)")
    unknown = sorted(_names(ast) - allowed)
    if unknown:
        raise TemplateError(
            f"unknown name {unknown[0]!r}; templates can read {', '.join(sorted(allowed))}"
        )


def check_template(source: str, allowed: frozenset[str] = KNOWN_NAMES) -> None:
    """Raise TemplateError when `source` does not compile or reads a name outside `allowed`."""
    try:
        ast = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from None
    try:
        check_structure(ast)
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(str(exc)) from None
    _check_names(ast, allowed)
    _template(source)
    _dry_run(source)


def _dry_run(source: str) -> None:
    """Render once with nothing known: a template that exceeds the bounds on its own constants is refused now,
    not on a call. Other failures (a value only a call provides) are left for run time."""
    try:
        _bounded_render(_template(source), {})
    except TemplateLimitExceeded as exc:
        raise TemplateError(f"template too large: {exc}") from None
    except Exception:  # noqa: BLE001, S110 - depends on call data
        pass


def _bounded_render(template: jinja2.Template, context: dict[str, Any]) -> str:
    """Render chunk by chunk, stopping at MAX_OUTPUT_CHARS (a loop cannot stream out unbounded text)."""
    parts: list[str] = []
    size = 0
    for chunk in template.generate(context):
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise TemplateLimitExceeded(f"template output exceeds {MAX_OUTPUT_CHARS} characters")
        parts.append(chunk)
    return "".join(parts)


def check_expression(source: str, allowed: frozenset[str] = KNOWN_NAMES) -> None:
    """Raise TemplateError when the expression `source` does not compile or reads an unknown name."""
    check_template("{{ " + source + " }}", allowed)
    _expression(source)


def slots_read(source: str) -> set[str]:
    """Slot names a template reads as `slots.name` or `slots['name']`."""
    try:
        ast = _ENV.parse(source)
    except jinja2.TemplateSyntaxError:
        return set()
    names: set[str] = set()
    for node in cast("Iterator[nodes.Getattr | nodes.Getitem]", ast.find_all((nodes.Getattr, nodes.Getitem))):
        if isinstance(node.node, nodes.Name) and node.node.name == "slots":
            name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
            if isinstance(name, str):
                names.add(name)
    return names


def _plain(context: Mapping[str, Any]) -> dict[str, Any]:
    return dict(context)


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render a template to text."""
    if not is_template(source):
        return source
    try:
        return _bounded_render(_template(source), _plain(context))
    except TemplateLimitExceeded as exc:
        raise TemplateError(f"template too large: {exc}") from None
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(f"refused by the template sandbox: {exc}") from None
    except TemplateError:
        raise
    except Exception as exc:  # noqa: BLE001 - any runtime failure of an author's template
        raise TemplateError(f"template failed: {type(exc).__name__}: {exc}") from None


def condition_holds(source: str, context: Mapping[str, Any]) -> bool:
    """Evaluate a branch condition to a boolean."""
    return bool(_evaluate_expression(source, context))


def _evaluate_expression(source: str, context: Mapping[str, Any]) -> Any:
    try:
        value = check_size(_expression(source)(**_plain(context)), "expression value")
    except TemplateLimitExceeded as exc:
        raise TemplateError(f"template too large: {exc}") from None
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(f"refused by the template sandbox: {exc}") from None
    except TemplateError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise TemplateError(f"expression failed: {type(exc).__name__}: {exc}") from None
    if isinstance(value, jinja2.Undefined):
        return None
    return value


def evaluate(value: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate a set/args value: nested lists and mappings are walked, strings templated.

    A string that is exactly one `{{ expression }}` yields the expression's native value.
    """
    if isinstance(value, str):
        if not is_template(value):
            return value
        whole = _WHOLE_EXPRESSION.match(value)
        if whole and "{%" not in value:
            return _evaluate_expression(whole["expr"], context)
        return render(value, context)
    if isinstance(value, Mapping):
        return {key: evaluate(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [evaluate(item, context) for item in value]
    return value


def templates_in(value: Any) -> list[str]:
    """Every template string inside a nested value (for load-time checks)."""
    if isinstance(value, str):
        return [value] if is_template(value) else []
    if isinstance(value, Mapping):
        return [t for item in value.values() for t in templates_in(item)]
    if isinstance(value, list):
        return [t for item in value for t in templates_in(item)]
    return []
