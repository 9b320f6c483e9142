"""Conversation tests for dialplans (`<name>.tests.yaml` beside `<name>.yaml`) and their coverage.

    tests:
      - name: balance by keypad
        context: {caller: "+15551234", lang: en-US}
        steps:
          - bot: Welcome                    # expectations about what the call start produced
          - dtmf: "1"
            node: identify
          - caller: "one two three four five six"
            bot: [I heard, right]
          - caller: yes
            intent: affirm                  # give the NLU reading, or let the dialplan's NLU parse
          - webhook: {ok: true, data: {verified: true}}
            actions: [Say, Listen]

A step holds at most one event (caller, dtmf, noinput, nomatch, webhook, queue, agent_answered, transfer_failed,
hangup) and any expectations about the actions it produced (bot, not_bot, actions, node, step, slots, vars,
lang, ended, article).

A node's `answer:` is answered at once by the real knowledge base (`knowledge` / `knowledge_loader`), as the
server does: `article: <id>` expects that article to answer within the step, `article: none` no article.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from voicebot.dialplan import actions as act
from voicebot.dialplan import events as ev
from voicebot.dialplan.graph import FALLBACK, GLOBAL, Edge, edges
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.schema import Dialplan
from voicebot.dialplan.state import State
from voicebot.yamlsrc import LineMap, LocatedValueError, load_yaml, validate

__all__ = ["CaseResult", "ConversationFile", "ConversationTest", "Coverage", "FileResult", "coverage", "load_tests",
           "run_case", "run_test_file", "tests_path_for"]

EVENT_KEYS = ("caller", "dtmf", "noinput", "nomatch", "webhook", "queue", "agent_answered", "transfer_failed",
              "hangup")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookStep(_Model):
    ok: bool = True
    data: Any = None
    error: str | None = None


class QueueStep(_Model):
    position: int = Field(ge=0)
    ewt_s: float = Field(ge=0)


class Step(_Model):
    """One event and/or expectations about the actions it produced."""

    caller: str | None = Field(None, description="what the caller says")
    intent: str | None = None
    entities: dict[str, Any] = Field(default_factory=dict)
    confidence: float = 1.0
    lang: str | None = Field(None, description="with caller: the recognised language; else: expected call language")
    dtmf: str | None = None
    noinput: bool = False
    nomatch: bool | str = Field(False, description="true, or the language the unrecognised speech sounded like: zh")
    webhook: WebhookStep | None = None
    queue: QueueStep | None = None
    agent_answered: bool = False
    transfer_failed: bool = False
    hangup: bool = False

    bot: str | list[str] | None = Field(None, description="substrings the bot's prompts contain, in order")
    not_bot: str | list[str] | None = None
    actions: list[str] | None = Field(None, description="action names that appear, in order, e.g. [Say, Listen]")
    node: str | None = None
    step: str | None = None
    slots: dict[str, Any] | None = None
    vars: dict[str, Any] | None = None
    ended: bool | None = None
    article: str | None = Field(None, description="the knowledge article that answered in this step, or none")

    @model_validator(mode="after")
    def _one_event(self) -> Step:
        present = [key for key in EVENT_KEYS if getattr(self, key) not in (None, False)]
        if len(present) > 1:
            raise LocatedValueError(f"one event per step, got {', '.join(present)}", hint="split into two steps")
        if (self.intent is not None or self.entities) and self.caller is None:
            raise LocatedValueError("intent/entities belong to a caller: utterance", hint='add caller: "..."')
        return self

    def event(self) -> ev.Event | None:
        if self.caller is not None:
            return ev.Heard(self.caller, self.intent, dict(self.entities), self.confidence, self.lang)
        if self.dtmf is not None:
            return ev.Keys(self.dtmf)
        if self.noinput:
            return ev.NoInput()
        if self.nomatch:
            return ev.NoMatch(lang=self.nomatch if isinstance(self.nomatch, str) else None)
        if self.webhook is not None:
            return ev.WebhookResult(self.webhook.ok, self.webhook.data, self.webhook.error)
        if self.queue is not None:
            return ev.QueueUpdate(self.queue.position, self.queue.ewt_s)
        if self.agent_answered:
            return ev.AgentAnswered()
        if self.transfer_failed:
            return ev.TransferFailed("test")
        if self.hangup:
            return ev.Hangup()
        return None


class ContextSpec(_Model):
    caller: str = "+15550100"
    dnis: str = ""
    lang: str | None = None
    profile: dict[str, Any] = Field(default_factory=dict)


class ConversationTest(_Model):
    name: str
    context: ContextSpec = Field(default_factory=ContextSpec)
    steps: list[Step] = Field(min_length=1)


class ConversationFile(_Model):
    dialplan: str | None = Field(None, description="the dialplan file, relative to this file")
    tests: list[ConversationTest] = Field(min_length=1)


def tests_path_for(dialplan_path: Path) -> Path:
    return dialplan_path.with_name(dialplan_path.stem + ".tests.yaml")


def load_tests(path: Path) -> tuple[ConversationFile, LineMap]:
    data, lines = load_yaml(path)
    return validate(ConversationFile, data, lines, str(path)), lines


# ------------------------------------------------------------------------------------------- running


@dataclass
class CaseResult:
    name: str
    passed: bool
    failure: str | None = None
    trail: list[str] = field(default_factory=list)
    step: int | None = None
    """0-based index of the failing step."""


@dataclass
class Coverage:
    nodes_total: int
    nodes_covered: set[str]
    edges_total: list[Edge]
    edges_covered: set[Edge]

    @property
    def node_ratio(self) -> float:
        return len(self.nodes_covered) / self.nodes_total if self.nodes_total else 1.0

    @property
    def edge_ratio(self) -> float:
        return len(self.edges_covered) / len(self.edges_total) if self.edges_total else 1.0


@dataclass
class FileResult:
    path: Path
    dialplan: Dialplan
    cases: list[CaseResult]
    coverage: Coverage

    @property
    def passed(self) -> bool:
        return all(case.passed for case in self.cases)


def coverage(plan: Dialplan, trails: list[list[str]]) -> Coverage:
    """Nodes entered and static transitions taken (a move matching no node edge counts as global/fallback)."""
    all_edges = edges(plan)
    by_pair: dict[tuple[str, str], list[Edge]] = {}
    for edge in all_edges:
        by_pair.setdefault((edge.source, edge.target), []).append(edge)
    nodes: set[str] = set()
    taken: set[Edge] = set()
    for trail in trails:
        nodes.update(trail)
        for source, target in zip(trail, trail[1:]):
            for pair in ((source, target), (GLOBAL, target), (FALLBACK, target)):
                if pair in by_pair:
                    taken.update(by_pair[pair])
                    break
    return Coverage(len(plan.nodes), nodes & set(plan.nodes), all_edges, taken)


class _Failure(Exception):
    pass


def _says(actions: list[act.Action]) -> list[str]:
    return [a.text for a in actions if isinstance(a, act.Say)]


def _subset(expected: dict[str, Any], actual: dict[str, Any], what: str) -> None:
    for key, value in expected.items():
        if key not in actual:
            raise _Failure(f"expected {what}.{key} = {value!r}; it is not set ({what}: {actual})")
        if actual[key] != value:
            raise _Failure(f"expected {what}.{key} = {value!r}, got {actual[key]!r}")


def _check(step: Step, state: State, actions: list[act.Action]) -> None:
    said = _says(actions)
    joined = " | ".join(said)
    if step.bot is not None:
        position = 0
        for fragment in [step.bot] if isinstance(step.bot, str) else step.bot:
            found = joined.lower().find(fragment.lower(), position)
            if found < 0:
                raise _Failure(f"expected the bot to say {fragment!r}; it said: {joined or '(nothing)'}")
            position = found + len(fragment)
    if step.not_bot is not None:
        for fragment in [step.not_bot] if isinstance(step.not_bot, str) else step.not_bot:
            if fragment.lower() in joined.lower():
                raise _Failure(f"expected the bot not to say {fragment!r}; it said: {joined}")
    if step.actions is not None:
        names = [type(a).__name__ for a in actions if not isinstance(a, act.LogEvent)]
        index = 0
        for wanted in step.actions:
            while index < len(names) and names[index] != wanted:
                index += 1
            if index == len(names):
                raise _Failure(f"expected actions {step.actions} in order; got {names}")
            index += 1
    if step.node is not None and state.node != step.node:
        raise _Failure(f"expected node {step.node!r}, the call is at {state.node!r}")
    if step.step is not None and state.step != step.step:
        raise _Failure(f"expected step {step.step!r}, got {state.step!r}")
    if step.slots is not None:
        _subset(step.slots, state.slots, "slots")
    if step.vars is not None:
        _subset(step.vars, state.vars, "vars")
    if step.ended is not None and state.ended != step.ended:
        raise _Failure(f"expected ended={step.ended}, got ended={state.ended} (reason {state.end_reason})")
    if step.lang is not None and step.caller is None and state.lang != step.lang:
        raise _Failure(f"expected language {step.lang!r}, got {state.lang!r}")
    if step.article is not None:
        _check_article(step.article, actions)


def _check_article(expected: str, actions: list[act.Action]) -> None:
    logged = [a.data for a in actions if isinstance(a, act.LogEvent) and a.kind in ("knowledge_answer",
                                                                                     "knowledge_nomatch")]
    answered = [str(data.get("article")) for data in logged if "article" in data]
    if expected == "none":
        if answered:
            raise _Failure(f"expected no article to answer; {answered[0]} did")
        return
    if expected not in answered:
        best = ", ".join(f"{d.get('best')} ({d.get('score')})" for d in logged if "best" in d)
        raise _Failure(f"expected article {expected!r} to answer; " + (
            f"answered: {', '.join(answered)}" if answered else f"none did (best: {best or 'no answer: node'})"))


KnowledgeRunner = Callable[[act.Answer], ev.KnowledgeResult]


def _nlu_event(event: ev.Event, nlu: Any, lang: str) -> ev.Event:
    """Fill in intent and entities from the NLU when a caller step gives only text."""
    if nlu is None or not isinstance(event, ev.Heard) or event.intent is not None or event.entities:
        return event
    result = nlu.parse(event.text, lang.split("-")[0])
    entities = {entity.type: entity.value for entity in result.entities}
    return ev.Heard(event.text, result.intent, entities, result.confidence, event.lang)


def _answered(interpreter: Interpreter, state: State, actions: list[act.Action],
              knowledge: KnowledgeRunner | None) -> tuple[State, list[act.Action]]:
    """Perform the Answer a step ended with, as the session does, and append what followed."""
    while actions and isinstance(actions[-1], act.Answer):
        if knowledge is None:
            raise _Failure("the dialplan answers from the knowledge base, but none is loaded")
        state, more = interpreter.handle(state, knowledge(actions[-1]))
        actions = [*actions, *more]
    return state, actions


def run_case(plan: Dialplan, case: ConversationTest, *, nlu: Any = None, label: str = "",
             knowledge: KnowledgeRunner | None = None) -> CaseResult:
    interpreter = Interpreter(plan)
    context = ev.CallContext(case.context.caller, case.context.dnis, case.context.lang, "test", case.name,
                             dict(case.context.profile))
    state, actions = interpreter.start(context)
    for index, step in enumerate(case.steps):
        event = step.event()
        try:
            if index == 0:
                state, actions = _answered(interpreter, state, actions, knowledge)
            if event is not None:
                heard_lang = event.lang if isinstance(event, ev.Heard) and event.lang else state.lang
                event = _nlu_event(event, nlu, heard_lang)  # as the session: the language heard, else the call's
                state, actions = interpreter.handle(state, event)
                state, actions = _answered(interpreter, state, actions, knowledge)
            elif index != 0:
                raise _Failure("a step without an event is only allowed first (it checks the call start)")
            _check(step, state, actions)
        except _Failure as exc:
            where = f"{label} step {index + 1}" if label else f"step {index + 1}"
            return CaseResult(case.name, False, f"{where}: {exc}", state.trail, index)
    return CaseResult(case.name, True, None, state.trail)


def run_test_file(path: Path, *, nlu_loader: Any = None,
                  knowledge_loader: Callable[[Dialplan], KnowledgeRunner | None] | None = None) -> FileResult:
    """Run every test in a `.tests.yaml` file. `nlu_loader(plan) -> NluEngine | None` supplies the NLU,
    `knowledge_loader(plan)` what answers the dialplan's `answer:` nodes."""
    from voicebot.dialplan.loader import load_dialplan

    tests, lines = load_tests(path)
    dialplan_path = path.parent / tests.dialplan if tests.dialplan else path.with_name(
        path.name.removesuffix(".tests.yaml") + ".yaml")
    plan = load_dialplan(dialplan_path)
    nlu = nlu_loader(plan) if nlu_loader is not None else None
    knowledge = knowledge_loader(plan) if knowledge_loader is not None else None
    results = []
    for t_index, case in enumerate(tests.tests):
        result = run_case(plan, case, nlu=nlu, knowledge=knowledge)
        if result.failure is not None and result.step is not None:
            line, _ = lines.line_for(("tests", t_index, "steps", result.step))
            result.failure = f"{path}:{line}: {result.failure}"
        results.append(result)
    return FileResult(path, plan, results, coverage(plan, [r.trail for r in results]))
