"""Load and check dialplans: schema errors and cross-references, each as file:line, node and the fix.

    plan = load_dialplan("dialplans/demo.yaml")          # raises ConfigErrors / YamlSourceError
    report = validate_all(Path("dialplans"), Path("nlu_models"), nlu_intents)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicebot.dialplan.graph import busy_loops, reachable
from voicebot.dialplan.interpreter import match_language
from voicebot.dialplan.prompts import SsmlError, parse_ssml_lite
from voicebot.dialplan.schema import Dialplan
from voicebot.dialplan.templates import (
    TemplateError,
    check_expression,
    check_template,
    is_template,
    slots_read,
)
from voicebot.dialplan.translations import find_gap, gap_hint, gap_message
from voicebot.dialplan.webhook_policy import WebhookEgress, webhook_findings
from voicebot.yamlsrc import ConfigErrors, LineMap, Loc, YamlSourceError, format_loc, load_yaml, validate

__all__ = ["ValidationReport", "check_dialplan", "dialplan_files", "load_dialplan", "validate_all"]

_PROMPT_KEYS = {"say", "text", "reprompts", "confirm", "wait_say", "offer"}
_PROMPT_FIELDS = _PROMPT_KEYS - {"text"}  # hold one prompt or a list of them ("text" is inside a prompt)
_DATA_KEYS = {"set", "vars", "args", "context", "headers", "result", "options"}
_TARGET_KEYS = {"goto", "else", "then", "on_fail", "on_error", "on_failure", "callback", "node"}


def load_dialplan(path: str | Path, *, warnings: list[YamlSourceError] | None = None) -> Dialplan:
    """Read, validate and cross-check one dialplan file; warnings (unreachable nodes, untranslated prompts)
    go to `warnings`."""
    label = str(path)
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigErrors([YamlSourceError(label, 1, 1, "a dialplan file must be a mapping",
                                            "start with 'dialplan: <name>', 'start: <node>' and 'nodes:'")])
    plan = validate(Dialplan, data, lines, label)
    errors, found_warnings = check_dialplan(plan, data, lines, label)
    if warnings is not None:
        warnings.extend(found_warnings)
    if errors:
        raise ConfigErrors(errors)
    return plan


class _Checker:
    def __init__(self, plan: Dialplan, data: dict[str, Any], lines: LineMap, label: str) -> None:
        self.plan, self.data, self.lines, self.label = plan, data, lines, label
        self.errors: list[YamlSourceError] = []
        self.warnings: list[YamlSourceError] = []
        self.slots = {n.ask.slot for n in plan.nodes.values() if n.ask is not None}

    def at(self, loc: Loc, message: str, hint: str | None = None, *, warning: bool = False) -> None:
        line, column = self.lines.line_for(loc)
        where = format_loc(loc)
        if len(loc) >= 2 and loc[0] == "nodes":
            where = f"node {loc[1]!r}" + (f" ({format_loc(loc[2:])})" if len(loc) > 2 else "")
        error = YamlSourceError(self.label, line, column, f"{where}: {message}", hint)
        (self.warnings if warning else self.errors).append(error)

    def node_hint(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self.plan.nodes), n=1)
        if close:
            return f"did you mean {close[0]!r}?"
        return f"nodes are: {', '.join(self.plan.nodes)}"

    def target(self, loc: Loc, name: Any) -> None:
        if not isinstance(name, str) or is_template(name):
            return
        if name not in self.plan.nodes:
            self.at(loc, f"goto target {name!r} is not a node", self.node_hint(name))

    def run(self) -> None:
        self.target(("start",), self.plan.start)
        if self.plan.fallback is not None:
            self.target(("fallback",), self.plan.fallback)
        self.language_offer()
        self.out_of_scope()
        for loc, value in _walk(self.data, ()):
            self.value(loc, value)
        self.flow()

    def language_offer(self) -> None:
        """The offer's nodes are listen nodes and its keys name the dialplan's languages (say: is checked as a prompt)."""
        offer = self.plan.language_offer
        if offer is None:
            return
        languages = ", ".join(self.plan.languages)
        for index, name in enumerate(offer.nodes):
            loc: Loc = ("language_offer", "nodes", index)
            node = self.plan.nodes.get(name)
            if node is None:
                self.at(loc, f"{name!r} is not a node", self.node_hint(name))
            elif node.listen is None:
                self.at(loc, f"node {name!r} has no listen: the offer is made at a menu's failed turn",
                        "list the menu nodes (with listen:) where callers may be in the wrong language")
        for key, lang in offer.dtmf.items():
            if match_language(lang, self.plan.languages) is None:
                self.at(("language_offer", "dtmf", key), f"language {lang!r} is not in languages ({languages})",
                        "use one listed there")

    def out_of_scope(self) -> None:
        """The out-of-scope path serves listen nodes; a plain node name as `person` is a target."""
        spec = self.plan.out_of_scope
        if spec is None:
            return
        for index, name in enumerate(spec.nodes):
            loc: Loc = ("out_of_scope", "nodes", index)
            node = self.plan.nodes.get(name)
            if node is None:
                self.at(loc, f"{name!r} is not a node", self.node_hint(name))
            elif node.listen is None:
                self.at(loc, f"node {name!r} has no listen: the out-of-scope path answers a menu's request",
                        "list the menu nodes (with listen:) whose requests may be out of scope")
        if isinstance(spec.person, str):
            self.target(("out_of_scope", "person"), spec.person)

    def value(self, loc: Loc, value: Any) -> None:
        key = loc[-1] if loc else None
        data_part = any(part in _DATA_KEYS for part in loc[:-1] if isinstance(part, str))
        if isinstance(value, str) and not data_part and (
            (key in _TARGET_KEYS and self._is_transition_position(loc)) or self._is_route(loc)
        ):
            self.target(loc, value)
        if key == "nomatch" and len(loc) >= 2 and loc[-2] == "answer" and isinstance(value, str):
            self.target(loc, value)
        if key == "if" and isinstance(value, str):
            self.template(loc, value, expression=True)
        elif isinstance(value, str) and is_template(value):
            self.template(loc, value)
        if data_part:
            return
        field_name = self._prompt_field(loc)
        if field_name is not None and isinstance(value, (str, dict)):
            self.translations(loc, value, field_name)
        if isinstance(value, str) and any(part in _PROMPT_KEYS for part in loc if isinstance(part, str)):
            if "options" not in loc:
                try:
                    parse_ssml_lite(_strip_templates(value))
                except SsmlError as exc:
                    self.at(loc, str(exc), 'pauses are written <break time="500ms"/>')
        if key == "lang" and isinstance(value, str) and match_language(value, self.plan.languages) is None:
            self.at(loc, f"language {value!r} is not in languages ({', '.join(self.plan.languages)})",
                    "add it to languages: or use one listed there")
        if isinstance(value, dict) and self._is_lang_map(loc) and not set(value) & {"text", "audio", "barge_in"}:
            for lang in value:
                if isinstance(lang, str) and match_language(lang, self.plan.languages) is None:
                    self.at((*loc, lang), f"language {lang!r} is not in languages "
                            f"({', '.join(self.plan.languages)})", "add it to languages: or fix the key")

    def _is_transition_position(self, loc: Loc) -> bool:
        # 'node' is a target only inside call:, 'then' everywhere it appears, 'callback' in queues
        return loc[-1] != "node" or (len(loc) >= 2 and loc[-2] == "call")

    def _is_route(self, loc: Loc) -> bool:
        """A string directly under listen.intents / listen.dtmf / global handlers is a node name."""
        return len(loc) >= 2 and loc[-2] in ("intents", "dtmf") and ("listen" in loc or loc[0] == "global")

    def _prompt_field(self, loc: Loc) -> str | None:
        """The field (say, reprompts, confirm, wait_say) when `loc` holds one prompt or a list entry of them."""
        if len(loc) < 2 or self._is_named(loc):
            return None
        key = loc[-2] if isinstance(loc[-1], int) else loc[-1]
        return key if key in _PROMPT_FIELDS else None

    def translations(self, loc: Loc, prompt: str | dict[str, Any], field_name: str) -> None:
        """Warn when a prompt of a multi-language dialplan lacks one of its languages."""
        gap = find_gap(prompt, self.plan.languages)
        if gap is not None:
            hint = gap_hint(gap.loc[-1] if gap.loc else field_name, self.plan.languages,
                            entry=isinstance(loc[-1], int) and not gap.loc)
            self.at((*loc, *gap.loc), gap_message(gap), hint, warning=True)

    def _is_lang_map(self, loc: Loc) -> bool:
        if not loc or self._is_named(loc):
            return False
        return loc[-1] in ("say", "text", "audio", "wait_say", "confirm") or (
            len(loc) >= 2 and loc[-2] in ("say", "reprompts") and isinstance(loc[-1], int))

    def _is_named(self, loc: Loc) -> bool:
        """Is loc[-1] a node or intent name (a node 'confirm', an intent 'say') rather than a field?"""
        return (len(loc) == 2 and loc[0] == "nodes") or self._is_route(loc)

    def template(self, loc: Loc, source: str, *, expression: bool = False) -> None:
        try:
            if expression:
                check_expression(source)
            else:
                check_template(source)
        except TemplateError as exc:
            self.at(loc, str(exc), "templates look like {{ slots.account }}; see docs/dialplan.md")
            return
        unknown = sorted(slots_read("{{ " + source + " }}" if expression else source) - self.slots)
        if unknown:
            known = ", ".join(sorted(self.slots)) or "none"
            self.at(loc, f"template reads slot {unknown[0]!r} that no ask fills",
                    f"slots filled by asks: {known}")

    def flow(self) -> None:
        for name, node in self.plan.nodes.items():
            if node.return_ and not any(n.call is not None for n in self.plan.nodes.values()):
                self.at(("nodes", name, "return"), "return without any call: in the dialplan",
                        "use goto, or reach this node through call: {node: ..., then: ...}")
        for loop in busy_loops(self.plan):
            self.at(("nodes", loop[0]), "loop with no listen, ask or webhook: " + " -> ".join(loop),
                    "a call would spin forever; add a listen/ask to the loop or break it")
        alive = reachable(self.plan)
        for name in self.plan.nodes:
            if name not in alive:
                self.at(("nodes", name), "unreachable: no transition leads here",
                        f"goto {name} from somewhere, or remove it", warning=True)


def check_dialplan(
    plan: Dialplan, data: dict[str, Any], lines: LineMap, label: str
) -> tuple[list[YamlSourceError], list[YamlSourceError]]:
    """Cross-reference checks beyond the schema: (errors, warnings)."""
    checker = _Checker(plan, data, lines, label)
    checker.run()
    return checker.errors, checker.warnings


def _walk(value: Any, loc: Loc) -> Iterator[tuple[Loc, Any]]:
    yield loc, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*loc, index))


def _strip_templates(text: str) -> str:
    import re

    return re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "x", text, flags=re.DOTALL)


# --------------------------------------------------------------------------------------- directories


@dataclass
class ValidationReport:
    """Result of validating a set of dialplans."""

    plans: dict[str, Dialplan] = field(default_factory=dict)
    errors: list[YamlSourceError] = field(default_factory=list)
    warnings: list[YamlSourceError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def dialplan_files(paths: list[Path]) -> list[Path]:
    """Dialplan YAML files under the given files/directories (conversation tests *.tests.yaml excluded)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.glob("*.yaml") if not p.name.endswith(".tests.yaml"))
            found += sorted(p for p in path.glob("*.yml") if not p.name.endswith(".tests.yml"))
        else:
            found.append(path)
    return found


NluIntents = Callable[[str, str], set[str]]
"""(nlu domain, language primary subtag e.g. 'en') -> trained intent names."""


def validate_all(
    dialplans: Path | list[Path],
    nlu_dir: Path | None = None,
    nlu_intents: NluIntents | None = None,
) -> ValidationReport:
    """Validate every dialplan; with `nlu_intents`, also check each intent used is trained per language."""
    report = ValidationReport()
    paths = dialplans if isinstance(dialplans, list) else [dialplans]
    files = dialplan_files(paths)
    if not files:
        report.errors.append(YamlSourceError(", ".join(map(str, paths)), None, None, "no dialplan files found",
                                             "dialplans are <name>.yaml files"))
    for path in files:
        try:
            plan = load_dialplan(path, warnings=report.warnings)
        except ConfigErrors as exc:
            report.errors += exc.errors
            continue
        except YamlSourceError as exc:
            report.errors.append(exc)
            continue
        report.plans[str(path)] = plan
        if plan.nlu is not None:
            report.errors += _check_nlu(plan, path, nlu_dir, nlu_intents)
        report.errors += webhook_errors(path)
    return report


def webhook_errors(path: Path, egress: WebhookEgress | None = None) -> list[YamlSourceError]:
    """Literal secrets in webhook headers and webhooks to refused destinations (loopback, metadata), located."""
    data, lines = load_yaml(path)
    errors = []
    for loc, problem, fix in webhook_findings(data, egress or WebhookEgress()):
        line, column = lines.line_for(loc)
        errors.append(YamlSourceError(str(path), line, column, f"{format_loc(loc)}: {problem}", fix))
    return errors


def _check_nlu(plan: Dialplan, path: Path, nlu_dir: Path | None, nlu_intents: NluIntents | None) -> list[YamlSourceError]:
    assert plan.nlu is not None  # checked only for a plan that names an NLU domain
    label = str(path)
    _, lines = load_yaml(path)
    errors: list[YamlSourceError] = []

    def at(loc: Loc, message: str, hint: str) -> None:
        line, column = lines.line_for(loc)
        errors.append(YamlSourceError(label, line, column, message, hint))

    if nlu_dir is not None and not (nlu_dir / plan.nlu).is_dir():
        at(("nlu",), f"nlu: domain {plan.nlu!r} not found in {nlu_dir}",
           f"create {nlu_dir}/{plan.nlu}/<lang>/nlu.yml or fix the name")
        return errors
    if nlu_intents is None:
        return errors
    used: list[tuple[Loc, str]] = [(("global", "intents", i), i) for i in plan.global_.intents]
    for name, node in plan.nodes.items():
        if node.listen is not None:
            used += [(("nodes", name, "listen", "intents", i), i) for i in node.listen.intents]
    for lang in plan.languages:
        primary = lang.split("-")[0]
        try:
            trained = nlu_intents(plan.nlu, primary)
        except Exception as exc:  # noqa: BLE001 - any NLU failure is reported at the nlu: line
            at(("nlu",), f"nlu: cannot load {plan.nlu!r} for {lang}: {exc}", "run voicebot validate on the NLU data")
            continue
        for loc, intent in used:
            if intent not in trained:
                close = difflib.get_close_matches(intent, sorted(trained), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"add it to {plan.nlu}/{primary}/nlu.yml"
                at(loc, f"{format_loc(loc)}: intent {intent!r} is not trained in NLU {plan.nlu!r} ({primary})", hint)
    return errors
