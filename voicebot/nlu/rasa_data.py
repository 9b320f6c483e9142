"""Reader for Rasa 3.x NLU training data (`nlu.yml`, version "3.1").

Supported sections of the `nlu:` list:

    - intent: check_balance            examples as a `|` block of "- text" lines, or a list of
      examples: |                      strings / {text: ..., metadata: ...} mappings
        - what's my [savings](account) balance
    - synonym: savings                 entity values that normalise to the synonym name
      examples: |
        - saving account
    - regex: account_number            patterns; the regex name doubles as an entity type
      examples: |
        - \\d{10,12}
    - lookup: bank                     a gazetteer; the lookup name doubles as an entity type
      examples: |
        - Chase

Inline annotations: `[text](type)`, `[text](type:value)` (legacy), `[text]{"entity": "type", "value": "v",
"role": "r", "group": "g"}`. Every error is a `YamlSourceError` naming file:line and the fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicebot.yamlsrc import LineMap, YamlSourceError, load_yaml, load_yaml_text

__all__ = [
    "Annotation",
    "Example",
    "NluData",
    "load_nlu_data",
    "parse_example",
    "parse_nlu_text",
]

_SECTION_KINDS = ("intent", "synonym", "regex", "lookup")
_ALLOWED_ITEM_KEYS = {*_SECTION_KINDS, "examples", "metadata"}
_ENTITY_NAME = re.compile(r"[A-Za-z_][\w.-]*")


@dataclass(frozen=True)
class Annotation:
    """An entity annotated in a training example; `start:end` index the plain text."""

    type: str
    value: str
    text: str
    start: int
    end: int
    role: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class Example:
    """One training utterance with its intent, annotations and source line."""

    text: str
    intent: str
    entities: tuple[Annotation, ...] = ()
    line: int | None = None


@dataclass
class NluData:
    """Everything one nlu.yml holds."""

    examples: list[Example] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)  # lower-cased variant -> canonical value
    regexes: dict[str, list[str]] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)
    source: str = "<memory>"
    # where each intent / entity type was first seen, for later checks that must point at the file
    intent_lines: dict[str, int] = field(default_factory=dict)
    entity_lines: dict[str, int] = field(default_factory=dict)

    @property
    def intents(self) -> set[str]:
        return {example.intent for example in self.examples}

    @property
    def entity_types(self) -> set[str]:
        """Types annotated in examples."""
        return {a.type for example in self.examples for a in example.entities}


class AnnotationError(ValueError):
    """A malformed inline annotation; `offset` is the character position in the example."""

    def __init__(self, message: str, offset: int, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.hint = hint


# ------------------------------------------------------------------------------------------- loading


def load_nlu_data(path: str | Path) -> NluData:
    """Read one Rasa nlu.yml; raise YamlSourceError (file:line) on any problem."""
    data, lines = load_yaml(path, core_booleans=True)  # as Rasa reads it: `- intent: yes` is the text 'yes'
    return _read(data, lines, str(path))


def parse_nlu_text(text: str, label: str = "<nlu.yml>") -> NluData:
    """Read Rasa NLU data from a string; errors name `label`."""
    data, lines = load_yaml_text(text, label, core_booleans=True)
    return _read(data, lines, label)


def _read(data: Any, lines: LineMap, label: str) -> NluData:
    def error(loc: tuple[Any, ...], message: str, hint: str | None = None) -> YamlSourceError:
        line, column = lines.line_for(loc)
        return YamlSourceError(label, line, column, message, hint)

    if not isinstance(data, dict):
        raise error((), "an NLU file must be a mapping with 'version' and 'nlu'", 'start with: version: "3.1"')
    unknown = set(data) - {"version", "nlu", "responses", "rules", "stories", "intents", "entities"}
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise error((key,), f"unknown top-level key {key!r}", "an NLU file holds 'version' and 'nlu'")
    version = data.get("version")
    if version is not None and not (isinstance(version, str) and version.startswith("3.")):
        raise error(("version",), f"unsupported version {version!r}", 'write version: "3.1" (quoted)')
    items = data.get("nlu")
    if items is None:
        raise error((), "missing 'nlu' list", "add 'nlu:' with '- intent: ...' entries")
    if not isinstance(items, list):
        raise error(("nlu",), "'nlu' must be a list of '- intent:' / synonym / regex / lookup entries")

    result = NluData(source=label)
    for index, item in enumerate(items):
        loc = ("nlu", index)
        if not isinstance(item, dict):
            raise error(loc, "each 'nlu' entry must be a mapping", "write '- intent: name' then 'examples: |'")
        kinds = [k for k in _SECTION_KINDS if k in item]
        if len(kinds) != 1:
            found = ", ".join(kinds) or "none"
            raise error(loc, f"entry needs exactly one of intent/synonym/regex/lookup (found {found})")
        kind = kinds[0]
        extra = set(item) - _ALLOWED_ITEM_KEYS
        if extra:
            key = sorted(map(str, extra))[0]
            raise error((*loc, key), f"unknown key {key!r} in {kind} entry", "allowed: examples, metadata")
        name = item[kind]
        if not isinstance(name, str) or not name.strip():
            raise error((*loc, kind), f"{kind} name must be non-empty text, got {name!r}")
        name = name.strip()
        raw = _example_lines(item, loc, lines, label, error, f"{kind} {name!r}")
        if not raw:
            raise error((*loc, kind), f"{kind} {name!r} has no examples", "add at least one '- example' line")
        if kind == "intent":
            result.intent_lines.setdefault(name, lines.line_for((*loc, kind))[0])
            for text, line in raw:
                result.examples.append(_parse_example_at(text, name, line, label, result))
        elif kind == "synonym":
            for text, line in raw:
                variant = text.strip().lower()
                previous = result.synonyms.get(variant)
                if previous is not None and previous != name:
                    raise YamlSourceError(
                        label, line, None,
                        f"synonym {text!r} maps to both {previous!r} and {name!r}", "keep it under one synonym",
                    )
                result.synonyms[variant] = name
        elif kind == "regex":
            for text, line in raw:
                try:
                    re.compile(text)
                except re.error as exc:
                    raise YamlSourceError(
                        label, line, None, f"regex {name!r}: invalid pattern {text!r}: {exc}"
                    ) from None
            result.regexes.setdefault(name, []).extend(text for text, _ in raw)
        else:
            result.lookups.setdefault(name, []).extend(text.strip() for text, _ in raw)
    if not result.examples:
        raise error(("nlu",), "no intents with examples", "add '- intent: name' entries with examples")
    return result


def _example_lines(
    item: dict[str, Any], loc: tuple[Any, ...], lines: LineMap, label: str, error: Any, what: str
) -> list[tuple[str, int | None]]:
    """The example strings of one entry with their source lines."""
    examples = item.get("examples")
    if examples is None:
        raise error(loc, f"{what} has no 'examples'", "add 'examples: |' followed by '- text' lines")
    key_line = lines.line_for((*loc, "examples"))[0]
    result: list[tuple[str, int | None]] = []
    if isinstance(examples, str):
        for offset, raw_line in enumerate(examples.split("\n")):
            stripped = raw_line.strip()
            if not stripped:
                continue
            if not stripped.startswith("- ") and stripped != "-":
                raise YamlSourceError(
                    label, key_line + 1 + offset, None,
                    f"{what}: example line {stripped!r} must start with '- '", "write each example as '- text'",
                )
            text = stripped[1:].strip()
            if not text:
                raise YamlSourceError(label, key_line + 1 + offset, None, f"{what}: empty example")
            result.append((text, key_line + 1 + offset))
        return result
    if isinstance(examples, list):
        for index, entry in enumerate(examples):
            line = lines.line_for((*loc, "examples", index))[0]
            text = entry.get("text") if isinstance(entry, dict) else entry
            if not isinstance(text, (str, int, float)) or isinstance(text, bool) or not str(text).strip():
                raise YamlSourceError(
                    label, line, None, f"{what}: each example must be text or {{text: ...}}"
                )
            result.append((str(text).strip(), line))
        return result
    raise error((*loc, "examples"), f"{what}: 'examples' must be a '|' block of '- text' lines or a list")


def _parse_example_at(text: str, intent: str, line: int | None, label: str, data: NluData) -> Example:
    try:
        plain, annotations = parse_example(text)
    except AnnotationError as exc:
        raise YamlSourceError(label, line, None, f"intent {intent!r}: {exc.message} in {text!r}", exc.hint) from None
    for annotation in annotations:
        data.entity_lines.setdefault(annotation.type, line or 0)
    return Example(plain, intent, tuple(annotations), line)


# ---------------------------------------------------------------------------------------- annotations

_LINK = re.compile(r"\[(?P<text>[^\[\]]+)\](?=[({])")


def parse_example(text: str) -> tuple[str, list[Annotation]]:
    """Strip inline annotations from one example; return the plain text and its annotations."""
    plain: list[str] = []
    annotations: list[Annotation] = []
    position = 0
    length = 0  # length of the plain text so far
    while True:
        match = _LINK.search(text, position)
        if match is None:
            tail = text[position:]
            _reject_stray_brackets(tail, position)
            plain.append(tail)
            break
        before = text[position : match.start()]
        _reject_stray_brackets(before, position)
        plain.append(before)
        length += len(before)
        entity_text = match["text"]
        spec_start = match.end()
        spec, position = _read_spec(text, spec_start)
        annotation = _annotation(entity_text, spec, spec_start, length)
        annotations.append(annotation)
        plain.append(entity_text)
        length += len(entity_text)
    return "".join(plain), annotations


def _reject_stray_brackets(chunk: str, offset: int) -> None:
    for index, char in enumerate(chunk):
        if char == "[" and "]" not in chunk[index:]:
            raise AnnotationError("unclosed '[' in annotation", offset + index, "write [text](entity_type)")


def _read_spec(text: str, start: int) -> tuple[str, int]:
    """The '(...)' or '{...}' annotation spec starting at `start` and the index after it."""
    opener = text[start]
    closer = ")" if opener == "(" else "}"
    depth = 0
    in_string = False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if char == "\\":
                continue
            if char == '"':
                in_string = False
            continue
        if char == '"' and opener == "{":
            in_string = True
        elif char == opener:
            depth += 1
        elif char == closer:
            depth -= 1
            if depth == 0:
                return text[start : index + 1], index + 1
    raise AnnotationError(f"unclosed {opener!r} after [..]", start, f"close it with {closer!r}")


def _annotation(entity_text: str, spec: str, offset: int, start: int) -> Annotation:
    end = start + len(entity_text)
    if spec.startswith("("):
        body = spec[1:-1].strip()
        name, _, value = body.partition(":")
        name = name.strip()
        _check_entity_name(name, offset)
        return Annotation(name, value.strip() or entity_text, entity_text, start, end)
    try:
        parsed = json.loads(spec)
    except json.JSONDecodeError as exc:
        raise AnnotationError(
            f"annotation {spec} is not valid JSON ({exc.msg})", offset,
            'write {"entity": "type", "value": "v"} with double quotes',
        ) from None
    if not isinstance(parsed, dict) or "entity" not in parsed:
        raise AnnotationError(f"annotation {spec} needs an \"entity\" key", offset, 'e.g. {"entity": "account"}')
    unknown = set(parsed) - {"entity", "value", "role", "group"}
    if unknown:
        raise AnnotationError(
            f"annotation {spec} has unknown key {sorted(unknown)[0]!r}", offset, "allowed: entity, value, role, group"
        )
    name = parsed["entity"]
    if not isinstance(name, str):
        raise AnnotationError(f"annotation {spec}: entity must be text", offset)
    _check_entity_name(name, offset)
    value = parsed.get("value", entity_text)
    role, group = parsed.get("role"), parsed.get("group")
    return Annotation(
        name, str(value), entity_text, start, end,
        None if role is None else str(role), None if group is None else str(group),
    )


def _check_entity_name(name: str, offset: int) -> None:
    if not _ENTITY_NAME.fullmatch(name):
        raise AnnotationError(
            f"invalid entity type {name!r}", offset, "use letters, digits and '_' e.g. [5 pm](time)"
        )
