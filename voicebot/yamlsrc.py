"""YAML loading that remembers where every value came from, and pydantic validation that reports file:line.

Used for every YAML file voicebot reads (server config, dialplans, queues, agents):

    data, lines = load_yaml("sip_config/voicebot.yaml")
    config = validate(ServerConfig, data, lines, "sip_config/voicebot.yaml")

`load_yaml` raises `YamlSourceError` (syntax errors, duplicate keys, unsupported tags, unreadable file);
`validate` raises `ConfigErrors` holding one `YamlSourceError` per problem, each with a human message and,
where one helps, a hint naming the fix. Lines and columns are 1-based.

Models can make their own checks point at a precise place by raising `LocatedValueError(message,
loc=(...relative path...), hint=...)` from a validator, and can attach a tailored message to a forbidden
field name with a `yaml_field_hints: ClassVar[dict[str, str]]` class attribute.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "ConfigErrors",
    "LineMap",
    "Loc",
    "LocatedValueError",
    "YamlSourceError",
    "format_loc",
    "load_yaml",
    "load_yaml_text",
    "validate",
]

Loc = tuple[Any, ...]
"""A path into loaded data: mapping keys and sequence indexes, e.g. ("trunks", 0, "registrar")."""

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlSourceError(Exception):
    """One problem in a YAML source file, located by file, line and column."""

    def __init__(
        self,
        path: str,
        line: int | None,
        column: int | None,
        message: str,
        hint: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.message = message
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.message}"
        if self.hint:
            text += " — " + self.hint
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.line, self.column, self.message, self.hint))


class ConfigErrors(Exception):
    """Every problem found in one validation pass, in file order."""

    def __init__(self, errors: Iterable[YamlSourceError]) -> None:
        self.errors: list[YamlSourceError] = sorted(
            errors, key=lambda e: (e.path, e.line or 0, e.column or 0)
        )
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.errors,))


class LocatedValueError(ValueError):
    """A validator's error that points below the model raising it, optionally with a hint.

    `loc` is relative to the model whose validator raises it; `validate` appends it to pydantic's location.
    """

    def __init__(self, message: str, *, loc: Loc = (), hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.loc = tuple(loc)
        self.hint = hint


class LineMap:
    """Source positions (1-based line, column) of every mapping key, sequence item and the document root."""

    def __init__(self, positions: Mapping[Loc, tuple[int, int]] | None = None) -> None:
        self._positions: dict[Loc, tuple[int, int]] = dict(positions or {})

    def record(self, loc: Loc, line: int, column: int) -> None:
        self._positions[tuple(loc)] = (line, column)

    def __contains__(self, loc: object) -> bool:
        return loc in self._positions

    def __len__(self) -> int:
        return len(self._positions)

    def items(self) -> Iterable[tuple[Loc, tuple[int, int]]]:
        """Every recorded location with its (line, column)."""
        return self._positions.items()

    def get(self, loc: Loc) -> tuple[int, int] | None:
        """The exact position of `loc`, or None when it was not in the file."""
        return self._positions.get(tuple(loc))

    def line_for(self, loc: Loc) -> tuple[int, int]:
        """Position of `loc`, else of its nearest recorded ancestor (a missing field reports its parent)."""
        loc = tuple(loc)
        for end in range(len(loc), -1, -1):
            position = self._positions.get(loc[:end])
            if position is not None:
                return position
        return (1, 1)


# --------------------------------------------------------------------------------------------- loading


def load_yaml(path: str | Path, *, core_booleans: bool = False) -> tuple[Any, LineMap]:
    """Read and safe-load one YAML document, recording the position of every key and item.

    core_booleans: only true/false are booleans (YAML 1.2, as Rasa reads its files); yes/no/on/off stay text."""
    label = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise YamlSourceError(label, None, None, f"cannot read file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlSourceError(
            label, line, None, "file is not valid UTF-8", "save the file as UTF-8"
        ) from exc
    return load_yaml_text(text, label, core_booleans=core_booleans)


class _CoreBooleanLoader(yaml.SafeLoader):
    """SafeLoader whose plain booleans are YAML 1.2's: true/false only (yes, no, on, off stay strings)."""


_CoreBooleanLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CoreBooleanLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml_text(text: str, path_label: str, *, core_booleans: bool = False) -> tuple[Any, LineMap]:
    """Safe-load one YAML document from `text`; errors name `path_label` (core_booleans: see load_yaml)."""
    loader = _CoreBooleanLoader(text) if core_booleans else yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.composer.ComposerError as exc:
            if exc.context and "expected a single document" in exc.context:
                raise YamlSourceError(
                    path_label,
                    *_position(exc.problem_mark),
                    "more than one YAML document in the file",
                    "remove the extra '---' separator; one file holds one document",
                ) from exc
            raise
        lines = LineMap()
        if root is None:
            return None, lines
        data = _Builder(loader, path_label, lines).build(root)
        return data, lines
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, path_label) from exc
    except yaml.YAMLError as exc:  # e.g. reader errors for control characters without a mark
        raise YamlSourceError(path_label, None, None, f"YAML error: {exc}") from exc
    finally:
        loader.dispose()


def _position(mark: yaml.Mark | None) -> tuple[int | None, int | None]:
    if mark is None:
        return None, None
    return mark.line + 1, mark.column + 1


def _syntax_error(exc: yaml.MarkedYAMLError, path_label: str) -> YamlSourceError:
    mark = exc.problem_mark or exc.context_mark
    line, column = _position(mark)
    problem = exc.problem or "invalid YAML"
    if isinstance(exc, yaml.constructor.ConstructorError):
        message = f"cannot load value: {problem}"
    else:
        message = f"YAML syntax error: {problem}"
    if exc.context:
        context_line, _ = _position(exc.context_mark)
        message += f" ({exc.context}"
        message += f" on line {context_line})" if context_line and context_line != line else ")"
    return YamlSourceError(path_label, line, column, message, _syntax_hint(problem))


def _syntax_hint(problem: str) -> str | None:
    if "'\\t'" in problem:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in problem:
        return "a value containing ': ' must be quoted, or the indentation is off"
    if "could not find expected ':'" in problem:
        return "every entry in a mapping needs 'key: value'"
    if "found undefined alias" in problem:
        return "define the anchor (&name) before using *name"
    if "could not determine a constructor" in problem:
        return "only plain YAML types are allowed (no !tags)"
    if "found unexpected end of stream" in problem or "found unexpected end" in problem:
        return "a quote or bracket is not closed"
    return None


class _Builder:
    """Construct Python values from composed nodes, recording positions and rejecting duplicate keys."""

    def __init__(self, loader: yaml.SafeLoader, path_label: str, lines: LineMap) -> None:
        self._loader = loader
        self._label = path_label
        self._lines = lines
        self._built: dict[int, Any] = {}  # id(node) -> value: aliases reuse the anchor's value
        self._in_progress: set[int] = set()

    def build(self, root: Node) -> Any:
        self._record((), root.start_mark)
        return self._value(root, ())

    def _record(self, loc: Loc, mark: yaml.Mark) -> None:
        self._lines.record(loc, mark.line + 1, mark.column + 1)

    def _error(self, mark: yaml.Mark, message: str, hint: str | None = None) -> YamlSourceError:
        return YamlSourceError(self._label, *_position(mark), message, hint)

    def _value(self, node: Node, loc: Loc) -> Any:
        key = id(node)
        if key in self._built:
            return self._built[key]
        if key in self._in_progress:
            raise self._error(node.start_mark, "recursive alias: a value contains itself")
        self._in_progress.add(key)
        try:
            if isinstance(node, ScalarNode):
                value = self._scalar(node)
            elif isinstance(node, MappingNode):
                value = self._mapping(node, loc)
            elif isinstance(node, SequenceNode):
                value = self._sequence(node, loc)
            else:  # pragma: no cover - the composer yields only these three
                raise self._error(node.start_mark, f"unsupported YAML node {type(node).__name__}")
        finally:
            self._in_progress.discard(key)
        self._built[key] = value
        return value

    def _scalar(self, node: ScalarNode) -> Any:
        try:
            return self._loader.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:  # e.g. a date-shaped value that is no date: 2024-13-45
            raise self._error(
                node.start_mark, f"cannot read {node.value!r}: {exc}", "quote it to keep it as text"
            ) from None

    def _sequence(self, node: SequenceNode, loc: Loc) -> list[Any]:
        if node.tag != _SEQ_TAG:
            raise self._error(
                node.start_mark, f"unsupported tag {node.tag} on a list", "remove the !tag"
            )
        items: list[Any] = []
        for index, item in enumerate(node.value):
            self._record((*loc, index), item.start_mark)
            items.append(self._value(item, (*loc, index)))
        return items

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[Any, Any]:
        if node.tag != _MAP_TAG:
            raise self._error(
                node.start_mark, f"unsupported tag {node.tag} on a mapping", "remove the !tag"
            )
        result: dict[Any, Any] = {}
        first_seen: dict[Any, int] = {}
        merges: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append((key_node, value_node))
                continue
            if not isinstance(key_node, ScalarNode):
                raise self._error(
                    key_node.start_mark,
                    "mapping keys must be plain scalars, not lists or mappings",
                )
            key = self._scalar(key_node)
            try:
                seen_line = first_seen.get(key)
            except TypeError:  # unhashable, e.g. a binary key
                raise self._error(key_node.start_mark, f"unusable mapping key {key!r}") from None
            if seen_line is not None:
                raise self._error(
                    key_node.start_mark,
                    f"duplicate key {key!r}",
                    f"it is already defined on line {seen_line}; keep only one",
                )
            first_seen[key] = key_node.start_mark.line + 1
            self._record((*loc, key), key_node.start_mark)
            result[key] = self._value(value_node, (*loc, key))
        for key_node, value_node in merges:
            self._merge(result, key_node, value_node, loc)
        return result

    def _merge(self, result: dict[Any, Any], key_node: Node, value_node: Node, loc: Loc) -> None:
        """Apply a '<<' merge key: explicit keys win, then earlier merge sources win over later ones."""
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, MappingNode):
                raise self._error(
                    source.start_mark, "'<<' merges only mappings", "use '<<: *anchor_of_a_mapping'"
                )
            merged = self._value(source, (*loc, "<<"))
            for key, value in merged.items():
                if key not in result:
                    result[key] = value
                    self._record((*loc, key), key_node.start_mark)


# ------------------------------------------------------------------------------------------ validation


def format_loc(loc: Loc) -> str:
    """Render a path the way a person reads it: trunks[0].registrar, routing.dids['+15551234']."""
    text = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "(top level)"


def validate(
    model: type[ModelT],
    data: Any,
    linemap: LineMap,
    path: str | Path,
    *,
    context: dict[str, Any] | None = None,
) -> ModelT:
    """Validate loaded YAML `data` with `model`; raise ConfigErrors naming file, line and fix for each problem.

    `context` is passed to pydantic validators (e.g. the names of known dialplans).
    """
    try:
        return model.model_validate(data, context=context)
    except pydantic.ValidationError as exc:
        label = str(path)
        errors = [
            _source_error(model, data, linemap, label, error)
            for error in exc.errors(include_url=False)
        ]
        raise ConfigErrors(_merge_alternatives(errors)) from None


def _merge_alternatives(errors: list[YamlSourceError]) -> list[YamlSourceError]:
    """Fold a union's per-member type errors ("expected A, got x" + "expected B, got x") into one."""
    merged: list[YamlSourceError] = []
    for error in errors:
        previous = merged[-1] if merged else None
        match = _EXPECTED.fullmatch(error.message)
        earlier = _EXPECTED.fullmatch(previous.message) if previous is not None else None
        if (
            previous is not None
            and match is not None
            and earlier is not None
            and (previous.line, previous.column) == (error.line, error.column)
            and (earlier["where"], earlier["got"]) == (match["where"], match["got"])
        ):
            if match["expected"] not in earlier["expected"].split(" or "):
                message = f"{earlier['where']}: expected {earlier['expected']} or {match['expected']}, got {match['got']}"
                merged[-1] = YamlSourceError(
                    previous.path, previous.line, previous.column, message, previous.hint or error.hint
                )
            continue
        merged.append(error)
    return merged


_EXPECTED = re.compile(r"(?P<where>.*?): expected (?P<expected>.+), got (?P<got>.+)", re.DOTALL)


def _source_error(
    model: type[pydantic.BaseModel],
    data: Any,
    linemap: LineMap,
    label: str,
    error: Mapping[str, Any],
) -> YamlSourceError:
    raw_loc = tuple(error["loc"])
    cause = (error.get("ctx") or {}).get("error")
    extra_loc = cause.loc if isinstance(cause, LocatedValueError) else ()
    loc, key_error = _data_loc(data, raw_loc + extra_loc, error["type"], len(extra_loc))
    message, hint = _describe(model, loc, key_error, error, cause)
    line, column = linemap.line_for(loc)
    return YamlSourceError(label, line, column, message, hint)


def _data_loc(data: Any, raw_loc: Loc, error_type: str, located_tail: int) -> tuple[Loc, bool]:
    """Keep the parts of pydantic's location that address the data; drop union/validator labels.

    A part absent from the data is kept when it names a missing field, or when it comes from the last
    `located_tail` parts (a LocatedValueError's own location). Returns the cleaned location and whether
    the error is about a mapping key (pydantic's '[key]').
    """
    loc: list[Any] = []
    node = data
    key_error = False
    for index, part in enumerate(raw_loc):
        last = index == len(raw_loc) - 1
        from_validator = index >= len(raw_loc) - located_tail
        if part == "[key]":
            key_error = True
            continue
        if isinstance(node, Mapping) and part in node:
            loc.append(part)
            node = node[part]
        elif (
            isinstance(node, list)
            and isinstance(part, int)
            and not isinstance(part, bool)
            and 0 <= part < len(node)
        ):
            loc.append(part)
            node = node[part]
        elif isinstance(node, Mapping) and last and (error_type == "missing" or from_validator):
            loc.append(part)  # a missing field: its name belongs in the message
            node = None
        # anything else is a pydantic label (union member, function name): not part of the data path
    return tuple(loc), key_error


def _describe(
    model: type[pydantic.BaseModel],
    loc: Loc,
    key_error: bool,
    error: Mapping[str, Any],
    cause: BaseException | None,
) -> tuple[str, str | None]:
    where = format_loc(loc)
    kind = error["type"]
    given = error.get("input")
    ctx = error.get("ctx") or {}

    if isinstance(cause, LocatedValueError):
        return f"{where}: {cause.message}", cause.hint
    if kind == "missing":
        return f"{where}: field required", _field_description(model, loc)
    if kind == "extra_forbidden":
        return _unknown_field(model, loc)
    if kind == "invalid_key":
        parent = format_loc(loc[:-1]) if given is not None and loc else where
        return f"{parent}: field names must be text, got {_show(given)}", "check the key and its indentation"
    if key_error:
        if kind == "string_type":
            return (
                f"{where}: key {_show(given)} must be text",
                "quote it in the file, e.g. \"0123\": ... (unquoted numbers lose leading zeros and '+')",
            )
        return f"{where}: key {_show(given)} is not valid: {_lower_first(error['msg'])}", None
    if kind in ("value_error", "assertion_error") and cause is not None:
        return f"{where}: {cause}", None
    if kind in _TYPE_NAMES:
        return f"{where}: expected {_TYPE_NAMES[kind]}, got {_show(given)}", _type_hint(kind, given)
    if kind in _BOUNDS:
        relation, bound_key = _BOUNDS[kind]
        bound = ctx.get(bound_key)
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"{where}: {_show(given)} is {relation} {bound}", None
    if kind in ("too_short", "too_long"):
        return f"{where}: {_lower_first(error['msg'])}", None
    if kind == "literal_error":
        return f"{where}: {_show(given)} is not allowed; expected {ctx.get('expected', '')}", None
    if kind == "enum":
        return f"{where}: {_show(given)} is not allowed; expected {ctx.get('expected', '')}", None
    return f"{where}: {_lower_first(error['msg'])} (got {_show(given)})", None


_TYPE_NAMES = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
}


_BOUNDS = {
    "greater_than_equal": ("below the minimum", "ge"),
    "greater_than": ("too small; it must be above", "gt"),
    "less_than_equal": ("above the maximum", "le"),
    "less_than": ("too large; it must be below", "lt"),
}


def _type_hint(kind: str, given: Any) -> str | None:
    """Suggest the fix for the common slip of quoting a number or boolean."""
    if not isinstance(given, str):
        return None
    text = given.strip()
    if kind in ("int_type", "float_type") and re.fullmatch(r"[-+]?[0-9]+(\.[0-9]*)?", text):
        return f"remove the quotes: {text}"
    if kind == "bool_type" and text.lower() in ("true", "false", "yes", "no", "on", "off"):
        return "write true or false without quotes"
    return None


def _show(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _unknown_field(model: type[pydantic.BaseModel], loc: Loc) -> tuple[str, str | None]:
    name = loc[-1] if loc else "?"
    parent_loc = loc[:-1]
    where = format_loc(parent_loc) if parent_loc else ""
    prefix = f"{where}: " if parent_loc else ""
    owner = _model_at(model, parent_loc)
    special = getattr(owner, "yaml_field_hints", None) if owner is not None else None
    if isinstance(special, Mapping) and name in special:
        return f"{prefix}field {_show(name)} is not allowed here", special[name]
    allowed = _field_names(owner)
    if isinstance(name, str):
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
        if close:
            return f"{prefix}unknown field {_show(name)} (did you mean {close[0]!r}?)", None
    hint = f"allowed fields here: {', '.join(allowed)}" if allowed else None
    return f"{prefix}unknown field {_show(name)}", hint


def _field_description(model: type[pydantic.BaseModel], loc: Loc) -> str | None:
    """The model's description of the field at `loc` (what to write there), if it has one."""
    owner = _model_at(model, loc[:-1]) if loc else None
    field = _find_field(owner, loc[-1]) if owner is not None else None
    return field.description if field is not None else None


def _field_names(model: type[pydantic.BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _model_at(model: type[pydantic.BaseModel], loc: Loc) -> type[pydantic.BaseModel] | None:
    """The pydantic model class that validates the value at `loc`, if the path leads to one."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if _is_model(current):
            field = _find_field(current, part)
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) in (list, tuple, set, frozenset) or current in (list, tuple):
            args = typing.get_args(current)
            current = args[0] if args else Any
        elif typing.get_origin(current) in (dict, Mapping) or current is dict:
            args = typing.get_args(current)
            current = args[1] if len(args) == 2 else Any
        else:
            return None
    current = _unwrap(current)
    return current if _is_model(current) else None


def _find_field(model: type[pydantic.BaseModel], name: Any) -> Any:
    for field_name, info in model.model_fields.items():
        if name in (field_name, info.alias):
            return info
    return None


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, pydantic.BaseModel)


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] so the container or model type shows."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation
