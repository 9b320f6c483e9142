"""Compliance lint: check a dialplan's prompts against a per-industry policy file; report file:line and the fix.

Policy file (policies/<industry>.yaml):

    policy: finance
    applies_to: [finance, "bank_*"]          # dialplan names (glob patterns)
    forbidden_phrases:                       # never said in any prompt (case-insensitive; '-' matches ' ')
      - {phrase: guaranteed returns, reason: "a promise of returns is misleading"}
      - 保本保息
    required_disclaimers:
      - name: investment_risk
        before: {nodes: [products, "product_*"], say_contains: ["investment funds"]}   # product-info nodes
        disclaimer: ["not deposits", "理财非存款"]   # any one of these, in every language of the node's say
    sensitive_slots_not_spoken: true         # no prompt may read a sensitive slot aloud
    quality: {max_silence_s: 20, max_hold_s: 60, talk_over_ms: 1500}   # timed live checks (compliance/timing.py)

A required disclaimer holds when every path from the call's entry points (start, global handlers, fallback) to a
product-info node passes through a node whose say (every prompt, every language) contains one of the disclaimer
phrases. A product node whose own say carries the disclaimer also passes (say is spoken before anything else).

Wiring into `voicebot validate` (voicebot/dialplan/cli.py):
    register_lint(validate_parser)                 # adds --policies DIR and --no-compliance
    report = validate_all(...)
    report.errors += run_lint(args, report.plans)  # [] with --no-compliance
"""

from __future__ import annotations

import argparse
import fnmatch
import re
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from voicebot.dialplan.graph import FALLBACK, GLOBAL, edges
from voicebot.dialplan.schema import Dialplan, prompt_list
from voicebot.dialplan.templates import slots_read
from voicebot.yamlsrc import ConfigErrors, LineMap, Loc, YamlSourceError, format_loc, load_yaml, validate

__all__ = [
    "DEFAULT_POLICY_DIR",
    "ForbiddenPhrase",
    "forbidden_in",
    "Policy",
    "ProductInfo",
    "QualityLimits",
    "RequiredDisclaimer",
    "lint_dialplan",
    "lint_dialplans",
    "load_policies",
    "load_policy",
    "policies_for",
    "register_lint",
    "run_lint",
]

DEFAULT_POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"
_PROMPT_KEYS = {"say", "text", "reprompts", "confirm", "wait_say", "offer"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ForbiddenPhrase(_Model):
    phrase: str = Field(min_length=1, description="text that must never be spoken")
    reason: str | None = Field(None, description="why: shown with the error")


class ProductInfo(_Model):
    """Which nodes give product information: by node name (glob) and/or words in their say."""

    nodes: list[str] = Field(default_factory=list, description="node names or glob patterns")
    say_contains: list[str] = Field(default_factory=list, description="a node saying any of these is product info")


class RequiredDisclaimer(_Model):
    name: str = Field(min_length=1)
    before: ProductInfo
    disclaimer: list[str] = Field(min_length=1, description="phrases; a disclaimer node says at least one")


class QualityLimits(_Model):
    """Timed live quality checks (质检, voicebot/compliance/timing.py): how long dead air and a wait without news
    may last, and how long the agent may talk over the caller. Every key is optional (the default applies)."""

    max_silence_s: float = Field(20.0, gt=0, le=600, description=(
        "dead air longer than this is an alert: nobody speaks on a bridged call (transcribed live), or the bot "
        "leaves the caller without a reply"))
    max_hold_s: float = Field(120.0, gt=0, le=3600, description=(
        "the caller waiting in a queue this long without an announcement or an agent: an alert (mind the queue's "
        "announce interval, 30 s by default)"))
    talk_over_ms: int = Field(2000, ge=100, le=60000, description=(
        "the agent starting while the caller speaks and overlapping them at least this long: an alert"))


class Policy(_Model):
    """One industry's rules."""

    policy: str = Field(min_length=1, description="the policy's name, e.g. finance")
    description: str | None = None
    applies_to: list[str] = Field(min_length=1, description="dialplan names or glob patterns ('*' for all)")
    forbidden_phrases: list[ForbiddenPhrase] = Field(default_factory=list)
    required_disclaimers: list[RequiredDisclaimer] = Field(default_factory=list)
    sensitive_slots_not_spoken: bool = Field(False, description="no prompt may read a sensitive slot")
    quality: QualityLimits | None = Field(None, description="live checks of calls with agents (compliance.quality)")

    @field_validator("forbidden_phrases", mode="before")
    @classmethod
    def _plain_phrases(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"phrase": item} if isinstance(item, str) else item for item in value]
        return value


# ------------------------------------------------------------------------------------------- loading


def load_policy(path: str | Path) -> Policy:
    """Read and validate one policy file; raises ConfigErrors / YamlSourceError with file:line."""
    data, lines = load_yaml(path)
    return validate(Policy, data, lines, str(path))


def load_policies(policy_dir: str | Path = DEFAULT_POLICY_DIR) -> list[Policy]:
    """Every policies/*.yaml, validated; all problems raised together as ConfigErrors."""
    directory = Path(policy_dir)
    if not directory.is_dir():
        raise ConfigErrors([YamlSourceError(str(directory), None, None, "policy directory not found",
                                            "pass --policies DIR or create policies/<industry>.yaml")])
    policies: list[Policy] = []
    errors: list[YamlSourceError] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            policies.append(load_policy(path))
        except ConfigErrors as exc:
            errors += exc.errors
        except YamlSourceError as exc:
            errors.append(exc)
    if errors:
        raise ConfigErrors(errors)
    return policies


def policies_for(dialplan_name: str, policies: list[Policy]) -> list[Policy]:
    return [p for p in policies if any(fnmatch.fnmatchcase(dialplan_name, pattern) for pattern in p.applies_to)]


# ---------------------------------------------------------------------------------------------- lint


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[-‐–—_]", " ", text.lower())).strip()


def phrase_pattern(phrase: str) -> re.Pattern[str]:
    body = re.escape(normalise(phrase)).replace(r"\ ", r"\s+")
    if phrase.isascii():
        body = r"(?<![a-z0-9])" + body + r"(?![a-z0-9])"
    return re.compile(body)


def forbidden_in(text: str, policy: Policy) -> list[ForbiddenPhrase]:
    """The policy's forbidden phrases that `text` says (knowledge articles are linted with this too)."""
    normal = normalise(text)
    return [item for item in policy.forbidden_phrases if phrase_pattern(item.phrase).search(normal)]


def _prompt_strings(data: Any, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    """Every spoken string in the raw dialplan with its location (choice options' words are not prompts)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("options", "set", "vars", "args", "context", "headers", "result", "hints"):
                continue
            yield from _prompt_strings(value, (*loc, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _prompt_strings(value, (*loc, index))
    elif isinstance(data, str) and any(part in _PROMPT_KEYS for part in loc if isinstance(part, str)):
        if loc and loc[-1] not in ("audio", "barge_in"):
            yield loc, data


def _say_variants(say: Any) -> list[str]:
    """Every text a node's say can speak: each prompt of a list, each language."""
    texts: list[str] = []
    for spec in prompt_list(say):
        if isinstance(spec.text, dict):
            texts += list(spec.text.values())
        elif isinstance(spec.text, str):
            texts.append(spec.text)
    return texts


class _Linter:
    def __init__(self, plan: Dialplan, policy: Policy, data: Any, lines: LineMap, label: str) -> None:
        self.plan, self.policy, self.data, self.lines, self.label = plan, policy, data, lines, label
        self.errors: list[YamlSourceError] = []

    def at(self, loc: Loc, message: str, hint: str | None) -> None:
        line, column = self.lines.line_for(loc)
        where = format_loc(loc)
        if len(loc) >= 2 and loc[0] == "nodes":
            where = f"node {loc[1]!r}" + (f" ({format_loc(loc[2:])})" if len(loc) > 2 else "")
        self.errors.append(YamlSourceError(self.label, line, column,
                                           f"{where}: [{self.policy.policy}] {message}", hint))

    def run(self) -> list[YamlSourceError]:
        prompts = list(_prompt_strings(self.data))
        self.forbidden(prompts)
        if self.policy.sensitive_slots_not_spoken:
            self.sensitive_spoken(prompts)
        for rule in self.policy.required_disclaimers:
            self.disclaimer(rule)
        return self.errors

    def forbidden(self, prompts: list[tuple[Loc, str]]) -> None:
        patterns = [(item, phrase_pattern(item.phrase)) for item in self.policy.forbidden_phrases]
        for loc, text in prompts:
            normal = normalise(text)
            for item, pattern in patterns:
                if pattern.search(normal):
                    reason = f" ({item.reason})" if item.reason else ""
                    self.at(loc, f"forbidden phrase {item.phrase!r}{reason}",
                            "reword the prompt; a policy file lists what may not be promised or advised")

    def sensitive_spoken(self, prompts: list[tuple[Loc, str]]) -> None:
        sensitive = {n.ask.slot for n in self.plan.nodes.values() if n.ask is not None and n.ask.sensitive}
        for loc, text in prompts:
            if "{" not in text:
                continue
            for slot in sorted(slots_read(text) & sensitive):
                self.at(loc, f"prompt reads the sensitive slot {slot!r} aloud",
                        "never repeat a sensitive value; confirm without speaking it")

    def disclaimer(self, rule: RequiredDisclaimer) -> None:
        phrases = [phrase_pattern(p) for p in rule.disclaimer]

        def says_disclaimer(name: str) -> bool:
            variants = _say_variants(self.plan.nodes[name].say)
            return bool(variants) and all(any(p.search(normalise(t)) for p in phrases) for t in variants)

        keywords = [phrase_pattern(k) for k in rule.before.say_contains]
        products = {
            name for name, node in self.plan.nodes.items()
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in rule.before.nodes)
            or any(k.search(normalise(t)) for k in keywords for t in _say_variants(node.say))
        }
        products = {name for name in products if not says_disclaimer(name)}
        if not products:
            return
        graph: dict[str, list[str]] = {}
        for edge in edges(self.plan):
            graph.setdefault(edge.source, []).append(edge.target)
        parent: dict[str, str | None] = {self.plan.start: None, GLOBAL: None, FALLBACK: None}
        queue = deque(parent)
        while queue:
            name = queue.popleft()
            if name in self.plan.nodes and says_disclaimer(name):
                continue  # paths through a disclaimer are fine
            for target in graph.get(name, []):
                if target not in parent:
                    parent[target] = name
                    queue.append(target)
        for name in sorted(products & set(parent), key=list(self.plan.nodes).index):
            path = [name]
            while parent[path[-1]] is not None:
                path.append(parent[path[-1]])  # type: ignore[arg-type]
            route = " -> ".join(reversed(path))
            self.at(("nodes", name), f"product information reachable without the '{rule.name}' disclaimer: {route}",
                    f"route every path through a node whose say contains one of: {', '.join(rule.disclaimer)}")


def lint_dialplan(
    plan: Dialplan,
    policy: Policy,
    path: str | Path,
    *,
    data: Any = None,
    lines: LineMap | None = None,
) -> list[YamlSourceError]:
    """Policy violations of one validated dialplan, each at file:line (the raw YAML is re-read unless given)."""
    if data is None or lines is None:
        data, lines = load_yaml(path)
    return _Linter(plan, policy, data, lines, str(path)).run()


def lint_dialplans(
    plans: Mapping[str, Dialplan], policy_dir: str | Path = DEFAULT_POLICY_DIR
) -> list[YamlSourceError]:
    """Lint validated dialplans ({path: plan}, e.g. ValidationReport.plans) against every policy applying to them.

    Errors in the policy files themselves are returned too (located in the policy file).
    """
    try:
        policies = load_policies(policy_dir)
    except ConfigErrors as exc:
        return list(exc.errors)
    errors: list[YamlSourceError] = []
    for path, plan in plans.items():
        applicable = policies_for(plan.dialplan, policies)
        if not applicable:
            continue
        data, lines = load_yaml(path)
        for policy in applicable:
            errors += lint_dialplan(plan, policy, path, data=data, lines=lines)
    return errors


# ------------------------------------------------------------------------------------------- CLI hook


def register_lint(validate_parser: argparse.ArgumentParser) -> None:
    """Add the compliance options to `voicebot validate`."""
    validate_parser.add_argument("--policies", type=Path, default=DEFAULT_POLICY_DIR,
                                 help=f"compliance policy directory (default {DEFAULT_POLICY_DIR})")
    validate_parser.add_argument("--no-compliance", action="store_true", help="skip the compliance lint")


def run_lint(args: argparse.Namespace, plans: Mapping[str, Dialplan]) -> list[YamlSourceError]:
    """The compliance errors for `voicebot validate`: append them to the report's errors."""
    if getattr(args, "no_compliance", False):
        return []
    return lint_dialplans(plans, getattr(args, "policies", DEFAULT_POLICY_DIR))
