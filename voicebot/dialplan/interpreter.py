"""The pure dialplan interpreter: (state, event) -> (state, actions). No I/O, no clocks, no threads.

Semantics follow VoiceXML's form interpretation:
- a node runs set, say, ask, webhook, then its exit; entering a node resets its counters;
- prompt counters: a `say` list plays entry n on the n-th play within one visit (the last repeats);
- counted noinput/nomatch: retry with the handler's words until the count reaches `max`, then `then`
  (or the dialplan `fallback`, else hang up); an ask allows `max_attempts` failures of any kind;
- slot filling: entities heard earlier fill a later ask without asking; optional confirmation;
- global handlers (intents and DTMF) work in every waiting state; local routes win over global ones.
`handle` never mutates the state it is given.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from typing import Any

from voicebot.dialplan import actions as act
from voicebot.dialplan import events as ev
from voicebot.dialplan import slot_types
from voicebot.dialplan.early_endpoint import EarlyEndpoint
from voicebot.dialplan.early_endpoint import resolve as resolve_early
from voicebot.dialplan.phrases import phrase
from voicebot.dialplan.prompts import SsmlError, parse_ssml_lite, pick_language, plain_text
from voicebot.dialplan.schema import (
    AnswerSpec,
    AskSpec,
    Dialplan,
    InputMode,
    ListenSpec,
    Node,
    PromptSpec,
    QueueSpec,
    RetryHandler,
    TransferSpec,
    TransitionSpec,
    WebhookSpec,
    prompt_list,
    prompt_spec,
    transition_spec,
)
from voicebot.dialplan.matching import code_matches
from voicebot.dialplan.slots import entity_types, extract_slot, validate_slot
from voicebot.dialplan.state import State
from voicebot.dialplan.templates import TemplateError, condition_holds, evaluate, is_template
from voicebot.speech.grammar import grammar_for_ask

__all__ = ["Interpreter", "match_language", "MASK"]

MASK = "****"
WAITING_FOR_CALLER = ("listen", "ask", "confirm", "language_offer", "answer_offer")
IN_QUEUE = ("queue", "callback_offer")
_PHASES = ("set", "say", "ask", "webhook", "exit")


def match_language(lang: str | None, languages: list[str]) -> str | None:
    """The dialplan language for a requested tag: exact match, else same primary subtag, else None."""
    if not lang:
        return None
    if lang in languages:
        return lang
    primary = lang.split("-")[0].lower()
    return next((tag for tag in languages if tag.split("-")[0].lower() == primary), None)


class _LoopError(Exception):
    pass


class Interpreter:
    """Runs one dialplan; holds no per-call data (that is all in State)."""

    def __init__(self, dialplan: Dialplan, *, max_steps: int = 64) -> None:
        self.dialplan = dialplan
        self.max_steps = max_steps

    def start(self, context: ev.CallContext) -> tuple[State, list[act.Action]]:
        """Begin a call: the caller profile lookup (if configured) or the start node."""
        plan = self.dialplan
        lang = match_language(context.lang, plan.languages) or plan.default_lang
        caller = {
            **{k: v for k, v in context.profile.items()},
            "number": context.caller,
            "dnis": context.dnis,
            "lang": lang,
            "channel": context.channel,
            "call_id": context.call_id,
            "profile": dict(context.profile),
            "private": context.private,
            "original_called": context.original_called,
            "redirect_reason": context.redirect_reason,
        }
        state = State(dialplan=plan.dialplan, node=plan.start, step="enter", lang=lang, caller=caller,
                      vars=copy.deepcopy(plan.vars))
        run = _Run(self, state)
        run.log("call_started", caller="anonymous" if context.private else context.caller, dnis=context.dnis,
                lang=lang)
        run.guarded(run.begin)
        return state, run.actions

    def handle(self, state: State, event: ev.Event) -> tuple[State, list[act.Action]]:
        """React to one event; returns a new state and the actions to perform, in order."""
        new_state = copy.deepcopy(state)
        run = _Run(self, new_state)
        run.guarded(lambda: run.dispatch(event))
        return new_state, run.actions


class _Run:
    """One step of the interpreter over a private copy of the state, collecting actions."""

    def __init__(self, interpreter: Interpreter, state: State) -> None:
        self.plan = interpreter.dialplan
        self.max_steps = interpreter.max_steps
        self.state = state
        self.actions: list[act.Action] = []
        self.moves = 0

    # ------------------------------------------------------------------ plumbing

    def guarded(self, work: Any) -> None:
        try:
            work()
        except _LoopError as exc:
            self.log("error", message=str(exc))
            self.end("error", say_error=True)

    def log(self, kind: str, **data: Any) -> None:
        self.actions.append(act.LogEvent(kind, {"node": self.state.node, **data}))

    def context(self, **extra: Any) -> dict[str, Any]:
        s = self.state
        return {
            "caller": s.caller,
            "slots": s.slots,
            "vars": s.vars,
            "result": s.result,
            "lang": s.lang,
            "call": {"node": s.node, "dialplan": s.dialplan, "intent": s.last_intent, "heard": self.last_heard()},
            **extra,
        }

    def last_heard(self) -> str:
        """What the caller last said (masked text stays masked; keys are not words)."""
        for entry in reversed(self.state.history):
            if entry.get("who") == "caller":
                text = str(entry.get("text") or "")
                return "" if text.startswith("#") else text
        return ""

    def node(self, name: str | None = None) -> Node:
        return self.plan.nodes[name or self.state.node]

    def template(self, source: Any, /, **extra: Any) -> Any:
        """Evaluate a template value; a failure is logged and yields None."""
        try:
            return evaluate(source, self.context(**extra))
        except TemplateError as exc:
            self.log("template_error", message=str(exc), template=str(source))
            return None

    # ------------------------------------------------------------------ speaking and listening

    def say(self, prompt: PromptSpec | Any, *, masked_extra: dict[str, Any] | None = None, lang: str | None = None,
            **extra: Any) -> None:
        spec = prompt_spec(prompt)
        lang = lang or self.state.lang
        text = ""
        if spec.text is not None:
            source: str | None = spec.text if isinstance(spec.text, str) else pick_language(
                spec.text, lang, self.plan.default_lang) or ""
            text = self.template(source, **extra) or ""
            text = str(text)
            shown = str(self.template(source, **{**extra, **masked_extra}) or "") if masked_extra else text
        else:
            shown = ""
        audio = None
        if spec.audio is not None:
            source = spec.audio if isinstance(spec.audio, str) else pick_language(
                spec.audio, lang, self.plan.default_lang)
            audio = str(self.template(source, **extra) or "") or None
        try:
            parts = parse_ssml_lite(text)
        except SsmlError:
            parts = (text,) if text else ()
        barge_in = spec.barge_in or self.plan.barge_in
        self.actions.append(act.Say(plain_text(parts), lang, barge_in, audio, parts))
        try:
            shown_text = plain_text(parse_ssml_lite(shown))
        except SsmlError:
            shown_text = shown
        self.state.history.append({"who": "bot", "text": shown_text or (audio or ""), "node": self.state.node})

    def say_counted(self, prompts: Any, key: str, *, advance: bool = True, **extra: Any) -> None:
        """Play the prompt selected by the prompt counter `key` (VoiceXML prompt counting)."""
        items = prompt_list(prompts)
        if not items:
            return
        count = self.state.counters.get(key, 0)
        if advance or count == 0:
            count += 1
            self.state.counters[key] = count
        self.say(items[min(count, len(items)) - 1], **extra)

    def listen_for_node(self, spec: ListenSpec) -> None:
        global_dtmf = self.plan.global_.dtmf
        if spec.mode is not None:
            mode = spec.mode
        elif spec.intents:
            mode = "both" if (spec.dtmf or global_dtmf) else "speech"
        else:
            mode = "dtmf"
        lengths = [len(key) for key in (*spec.dtmf, *global_dtmf)]
        max_digits = spec.max_digits or (max(lengths) if lengths else None)
        confidence = spec.min_confidence
        self.emit_listen(spec, mode, max_digits, intents=set(spec.intents), min_confidence=confidence)

    def emit_listen(self, hints: Any, mode: InputMode, max_digits: int | None, *, intents: set[str] | None = None,
                    slot: AskSpec | None = None, min_confidence: float = 0.0) -> None:
        self.actions.append(act.Listen(
            mode=mode,
            timeout_ms=hints.timeout_ms,
            end_silence_ms=hints.end_silence_ms,
            max_digits=max_digits,
            terminator=hints.terminator,
            hints=tuple(hints.hints),
            lang=self.state.lang,
            early=None if mode == "dtmf" else self.early_endpoint(hints, intents or set(), slot, min_confidence),
            grammar=None if mode == "dtmf" or slot is None else grammar_for_ask(
                slot, self.known_values(slot) if slot.type == "digits" else ()),
        ))

    def early_endpoint(self, hints: Any, intents: set[str], slot: AskSpec | None,
                       min_confidence: float) -> EarlyEndpoint | None:
        """What may end this listen's turn after a short silence (global intents always count)."""
        settings = resolve_early(self.plan.early_endpoint, getattr(hints, "early_endpoint", None))
        if settings is None:
            return None
        return EarlyEndpoint(silence_ms=min(settings.silence_ms, hints.end_silence_ms),
                             min_confidence=max(settings.min_confidence, min_confidence),
                             intents=frozenset(intents | set(self.plan.global_.intents)), slot=slot)

    def listen_for_ask(self, ask: AskSpec) -> None:
        mode = ask.input or slot_types.get(ask.type).input
        self.emit_listen(ask, mode, keyed_length(ask), slot=ask)

    def listen_for_yes_no(self, ask: AskSpec) -> None:
        self.emit_listen(ask, "both", 1, slot=_YES_NO)

    # ------------------------------------------------------------------ moving between nodes

    def begin(self) -> None:
        if self.plan.lookup is not None:
            self.request_webhook(self.plan.lookup)
            self.state.step = "lookup"
        else:
            self.enter(self.plan.start)

    def enter(self, target: str) -> None:
        self.moves += 1
        if self.moves > self.max_steps:
            raise _LoopError(f"more than {self.max_steps} moves without waiting for the caller (a loop?)")
        name = str(self.template(target)) if is_template(target) else target
        if name not in self.plan.nodes:
            self.log("error", message=f"goto target {name!r} is not a node", target=str(target))
            self.fail()
            return
        s = self.state
        self.leave_current()
        s.node = name
        s.step = "enter"
        s.candidate = None
        s.callback_offered = False
        prefix = name + "."
        s.counters = {key: value for key, value in s.counters.items() if not key.startswith(prefix)}
        s.trail.append(name)
        self.log("node")
        self.run_from("set")

    def leave_current(self) -> None:
        s = self.state
        if s.step in IN_QUEUE:
            spec = self.queue_spec(self.node())
            if spec is not None and spec.queue:
                queue = str(self.template(spec.queue))
                self.actions.append(act.LeaveQueue(queue, reason="caller_left"))
        if s.recording_paused:
            s.recording_paused = False
            if not s.recording_held:
                self.actions.append(act.SetRecording(paused=False))

    def run_from(self, phase: str) -> None:
        node = self.node()
        name = self.state.node
        for current in _PHASES[_PHASES.index(phase):]:
            if current == "set" and node.recording is not None:
                self.hold_recording(node.recording == "pause")
            if current == "set" and node.set:
                self.assign(node.set)
            elif current == "say" and node.say is not None:
                self.say_counted(node.say, f"{name}.say")
            elif current == "ask" and node.ask is not None:
                if not self.begin_ask(node.ask):
                    return
            elif current == "webhook" and node.webhook is not None:
                self.request_webhook(node.webhook)
                self.state.step = "webhook"
                return
            elif current == "exit":
                self.exit(node)
                return

    def hold_recording(self, paused: bool) -> None:
        """A node's `recording: pause|resume` (a sensitive ask in progress keeps its own pause)."""
        s = self.state
        if paused != s.recording_held:
            s.recording_held = paused
            if not s.recording_paused:
                self.actions.append(act.SetRecording(paused=paused))
            self.log("recording_paused" if paused else "recording_resumed")

    def assign(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            self.state.vars[key] = self.template(value)

    def exit(self, node: Node) -> None:
        s = self.state
        if node.listen is not None:
            s.step = "listen"
            self.listen_for_node(node.listen)
        elif node.answer is not None:
            self.request_answer(node.answer)
        elif node.branch is not None:
            for case in node.branch:
                if case.else_ is not None or self.condition(case.if_ or "false"):
                    if case.set:
                        self.assign(case.set)
                    if case.say is not None:
                        for prompt in prompt_list(case.say):
                            self.say(prompt)
                    self.enter(case.target)
                    return
        elif node.goto is not None:
            self.enter(node.goto)
        elif node.transfer is not None and node.transfer.to is not None:
            target = str(self.template(node.transfer.to) or "")
            s.step = "transfer"
            self.actions.append(act.Transfer(target, self.agent_context(node.transfer)))
        elif node.transfer is not None or node.enqueue is not None:
            spec = node.transfer or node.enqueue
            assert spec is not None  # one of them is set (the elif)
            self.enqueue(spec)
        elif node.call is not None:
            s.stack.append(node.call.then)
            self.log("subflow_call", subflow=node.call.node, then=node.call.then)
            self.enter(node.call.node)
        elif node.return_:
            if not s.stack:
                self.log("error", message="return outside a subflow")
                self.fail()
                return
            self.enter(s.stack.pop())
        elif node.hangup not in (None, False):
            self.end(node.hangup_reason)

    def condition(self, expression: str) -> bool:
        try:
            return condition_holds(expression, self.context())
        except TemplateError as exc:
            self.log("template_error", message=str(exc), template=expression)
            return False

    def take(self, transition: Any) -> None:
        """Follow a handler's transition: set, say, then goto / repeat / switch language / hang up."""
        spec: TransitionSpec = transition_spec(transition)
        if spec.goto == self.state.node and self.state.step in IN_QUEUE:
            self.log("event_ignored", event="already_queued", node=self.state.node)  # "0" while waiting: keep place
            return
        if spec.set:
            self.assign(spec.set)
        if spec.say is not None:
            for prompt in prompt_list(spec.say):
                self.say(prompt)
        if spec.lang is not None:
            self.switch_language(spec.lang)
        if spec.goto is not None:
            self.enter(spec.goto)
        elif spec.hangup:
            self.end("caller_request")
        else:
            self.repeat()

    def switch_language(self, lang: str) -> None:
        tag = match_language(lang, self.plan.languages)
        if tag is None:
            self.log("error", message=f"language {lang!r} is not one of the dialplan's languages")
            return
        if tag != self.state.lang:
            self.state.lang = tag
            self.log("language", lang=tag)

    def repeat(self) -> None:
        """Replay the prompt of the current waiting point and listen again (prompt counter unchanged)."""
        s = self.state
        node = self.node()
        if s.step == "listen" and node.listen is not None:
            if node.say is not None:
                self.say_counted(node.say, f"{s.node}.say", advance=False)
            self.listen_for_node(node.listen)
        elif s.step == "ask" and node.ask is not None:
            self.prompt_ask(node.ask, advance=False)
        elif s.step == "confirm" and node.ask is not None:
            self.ask_confirmation(node.ask)
        elif s.step == "language_offer" and node.listen is not None:
            self.say_language_offers()
            self.listen_for_node(node.listen)
        elif s.step == "answer_offer" and node.answer is not None:
            self.say_raw(str(s.vars.get(_ANSWER, {}).get("short_answer", "")))
            self.offer_more(node.answer)
        else:
            self.log("repeat_ignored", step=s.step)

    def fail(self) -> None:
        """Go to the dialplan fallback, or end the call when there is none (or we are already there)."""
        fallback = self.plan.fallback
        if fallback is not None and self.state.node != fallback:
            self.enter(fallback)
        else:
            self.end("error", say_error=True)

    def end(self, reason: str, *, say_error: bool = False) -> None:
        s = self.state
        if say_error:
            self.say(phrase("error", s.lang))
        if s.recording_paused:
            s.recording_paused = False
            if not s.recording_held:
                self.actions.append(act.SetRecording(paused=False))
        s.step = "ended"
        s.ended = True
        s.end_reason = reason
        self.actions.append(act.Hangup(reason))

    # ------------------------------------------------------------------ events

    def dispatch(self, event: ev.Event) -> None:
        s = self.state
        if s.ended:
            self.log("event_after_end", event=type(event).__name__)
            return
        if isinstance(event, ev.Hangup):
            s.ended, s.step, s.end_reason = True, "ended", "caller_hangup"
            self.log("caller_hangup")
            return
        if isinstance(event, ev.Heard):
            self.on_heard(event)
        elif isinstance(event, ev.Keys):
            self.on_keys(event.digits)
        elif isinstance(event, ev.NoInput):
            self.on_failure("noinput")
        elif isinstance(event, ev.NoMatch):
            if event.lang and self.plan.auto_language and s.step in WAITING_FOR_CALLER:
                self.switch_language(event.lang)  # the retry prompt speaks the caller's language
            self.on_failure("nomatch")
        elif isinstance(event, ev.WebhookResult):
            self.on_webhook(event)
        elif isinstance(event, ev.KnowledgeResult):
            self.on_knowledge(event)
        elif isinstance(event, ev.QueueUpdate):
            self.on_queue_update(event)
        elif isinstance(event, ev.AgentAnswered):
            self.on_agent_answered(event)
        elif isinstance(event, ev.TransferFailed):
            self.on_transfer_failed(event)
        else:
            self.log("event_ignored", event=type(event).__name__, step=s.step)

    def current_ask(self) -> AskSpec | None:
        return self.node().ask

    def sensitive_now(self) -> bool:
        ask = self.current_ask()
        return bool(ask and ask.sensitive and self.state.step in ("ask", "confirm"))

    def on_heard(self, heard: ev.Heard) -> None:
        s = self.state
        if s.step not in (*WAITING_FOR_CALLER, *IN_QUEUE):
            self.log("event_ignored", event="Heard", step=s.step)
            return
        masked = self.sensitive_now()
        s.history.append({"who": "caller", "text": MASK if masked else heard.text, "node": s.node,
                          "intent": heard.intent})
        s.last_intent = heard.intent
        if self.plan.auto_language and heard.lang:
            tag = match_language(heard.lang, self.plan.languages)
            if tag is not None and tag != s.lang:
                self.switch_language(tag)
        if not masked:
            s.entities.update(heard.entities)
        if is_hesitation(heard.text) and s.step in WAITING_FOR_CALLER:
            if s.step == "language_offer":
                s.step = "listen"
            self.log("hesitation")  # "um" is no answer: the NLU reads it as yes (0.93) and confirmed actions
            self.on_failure("nomatch")
            return
        intent = heard.intent
        node = self.node()
        global_route = self.global_route(heard)
        offer_turn = s.step == "language_offer"
        if offer_turn:
            s.step = "listen"  # the menu still answers; the offer only adds a way to change language
        if s.step == "listen" and node.listen is not None:
            spec = node.listen
            if intent is not None and heard.confidence >= spec.min_confidence and intent in spec.intents:
                self.take(spec.intents[intent])
                return
            answer = confirmation_route(spec.intents, heard.text)  # "yes, please cancel it" answers "shall I?"
            if answer is not None:
                self.take(spec.intents[answer])
                return
            chosen = self.offered_language_heard(heard, global_route) if offer_turn else None
            if chosen is not None:
                self.choose_language(chosen)
                return
            if global_route is not None and heard.confidence >= spec.min_confidence:
                self.take(global_route)
                return
            self.on_failure("nomatch")
            return
        if s.step == "ask" and node.ask is not None:
            value = extract_slot(node.ask, text=heard.text, intent=intent, entities=heard.entities)
            if node.ask.candidates is not None and self.answer_from_candidates(node.ask, heard.text, value):
                return
            if global_route is not None and (value is None or slot_types.get(node.ask.type).free_words):
                self.take(global_route)  # a text slot would take "agent" as its value: the global intent wins
                return
            self.answer(node.ask, value)
            return
        if s.step == "answer_offer" and node.answer is not None:
            self.on_offer_reply(node.answer, heard, global_route)
            return
        yes_no = extract_slot(_YES_NO, text=heard.text, intent=intent) if s.step in _YES_NO_STEPS else None
        if global_route is not None and yes_no is None:
            self.take(global_route)
            return
        if s.step == "confirm" and node.ask is not None:
            self.on_confirmation(node.ask, yes_no)
        elif s.step == "callback_offer":
            self.on_callback_answer(yes_no is True)

    def global_route(self, heard: ev.Heard) -> Any | None:
        """The global handler a heard intent takes, when the NLU is sure enough (global_.min_confidence)."""
        handlers = self.plan.global_
        if heard.intent is None or heard.intent not in handlers.intents:
            return None
        return handlers.intents[heard.intent] if heard.confidence >= handlers.min_confidence else None

    def on_keys(self, digits: str) -> None:
        s = self.state
        if s.step not in (*WAITING_FOR_CALLER, *IN_QUEUE):
            self.log("event_ignored", event="Keys", step=s.step)
            return
        node = self.node()
        masked = self.sensitive_now()
        s.history.append({"who": "caller", "text": MASK if masked else f"#{digits}", "node": s.node})
        global_dtmf = self.plan.global_.dtmf
        key = digits.rstrip("#") or digits
        if s.step == "language_offer":
            s.step = "listen"
            offer = self.plan.language_offer
            if offer is not None and key in offer.dtmf:
                self.choose_language(offer.dtmf[key])  # "普通话请按2": the offer's keys win in this one turn
                return
        if s.step == "listen" and node.listen is not None:
            if key in node.listen.dtmf:
                self.take(node.listen.dtmf[key])
            elif key in global_dtmf:
                self.take(global_dtmf[key])
            else:
                self.on_failure("nomatch")
            return
        if s.step == "ask" and node.ask is not None:
            value = extract_slot(node.ask, keys=digits)
            if node.ask.candidates is not None and value is None and key not in global_dtmf \
                    and self.answer_from_candidates(node.ask, key, None):
                return
            if value is None and key in global_dtmf:
                self.take(global_dtmf[key])
            else:
                self.answer(node.ask, value)
        elif s.step == "confirm" and node.ask is not None:
            value = extract_slot(_YES_NO, keys=digits)
            if value is None and key in global_dtmf:
                self.take(global_dtmf[key])
            else:
                self.on_confirmation(node.ask, value)
        elif s.step == "answer_offer" and node.answer is not None:
            if key == "1":
                self.answer_detail(node.answer)
            elif key != "2" and key in global_dtmf:
                self.take(global_dtmf[key])
            else:
                self.take(node.answer.then)
        elif s.step == "callback_offer" and key != "1" and key in global_dtmf:
            self.take(global_dtmf[key])
        elif s.step == "callback_offer":
            self.on_callback_answer(key == "1")
        elif key in global_dtmf:
            self.take(global_dtmf[key])

    # ------------------------------------------------------------------ counted retries

    def on_failure(self, kind: str) -> None:
        """NoInput / NoMatch (or an unrecognised answer) in the current waiting state."""
        s = self.state
        node = self.node()
        if s.step == "language_offer":
            s.step = "listen"
            if s.lang != s.vars.get(_OFFERED_IN):  # speech not understood, but in the offered language
                self.choose_language(s.lang)
                return
        if s.step == "listen" and node.listen is not None:
            handler: RetryHandler = getattr(node.listen, kind)
            key = f"{s.node}.{kind}"
            count = s.counters.get(key, 0) + 1
            s.counters[key] = count
            self.log(kind, count=count, max=handler.max)
            if self.offer_language(handler, kind):
                return
            if count >= handler.max:
                self.exhausted(handler.then)
                return
            if handler.say is not None:
                self.say_counted(handler.say, f"{key}.say")
            else:
                self.say(phrase(kind, s.lang))
            if handler.reprompt and node.say is not None:
                self.say_counted(node.say, f"{s.node}.say")
            self.listen_for_node(node.listen)
        elif s.step in ("ask", "confirm") and node.ask is not None:
            self.ask_failed(node.ask, kind)
        elif s.step == "callback_offer":
            self.on_callback_answer(False)
        elif s.step == "answer_offer" and node.answer is not None:
            self.log(kind, count=1, max=1)
            self.take(node.answer.then)  # no wish for more detail: go on
        else:
            self.log("event_ignored", event=kind, step=s.step)

    # ------------------------------------------------------------------ the language offer

    def offer_language(self, handler: RetryHandler, kind: str) -> bool:
        """At the configured failed turn in a first menu, once a call: retry words, then each language's offer."""
        s = self.state
        offer = self.plan.language_offer
        if offer is None or s.node not in offer.nodes or _OFFERED_IN in s.vars:
            return False
        failures = s.counters.get(f"{s.node}.noinput", 0) + s.counters.get(f"{s.node}.nomatch", 0)
        if failures < offer.after:
            return False
        node = self.node()
        assert node.listen is not None  # the loader allows only listen nodes in language_offer.nodes
        s.vars[_OFFERED_IN] = s.lang
        self.log("language_offer", failures=failures)
        if handler.say is not None:
            self.say_counted(handler.say, f"{s.node}.{kind}.say")
        else:
            self.say(phrase(kind, s.lang))
        self.say_language_offers()
        s.step = "language_offer"
        self.listen_for_node(node.listen)
        return True

    def say_language_offers(self) -> None:
        """Each language's offer in that language; the call's own language last (so the caller hears the others
        first, and the session's voice stays the call's)."""
        offer = self.plan.language_offer
        assert offer is not None
        tags = [(match_language(key, self.plan.languages), text) for key, text in offer.say.items()]
        ordered = sorted((pair for pair in tags if pair[0] is not None), key=lambda pair: pair[0] == self.state.lang)
        for tag, text in ordered:
            self.say(text, lang=tag)

    def offered_language_heard(self, heard: ev.Heard, global_route: Any) -> str | None:
        """The language a caller chose by voice in the offer turn: a request for one ("普通话", "English please"),
        or speech in another language than the offer was made in."""
        if global_route is not None:
            spec = transition_spec(global_route)
            if spec.lang is not None and spec.goto is None and not spec.hangup:
                return spec.lang
        spoken = match_language(heard.lang, self.plan.languages)
        if spoken is not None and spoken != self.state.vars.get(_OFFERED_IN):
            return spoken
        if self.state.lang != self.state.vars.get(_OFFERED_IN):
            return self.state.lang  # auto_language already followed the caller
        return None

    def choose_language(self, lang: str) -> None:
        """The caller took the offer: same node, slots and vars; the menu starts again in that language."""
        s = self.state
        node = self.node()
        assert node.listen is not None
        self.switch_language(lang)
        self.log("language_chosen", lang=s.lang)
        prefix = s.node + "."
        s.counters = {key: value for key, value in s.counters.items() if not key.startswith(prefix)}
        s.step = "listen"
        if node.say is not None:
            self.say_counted(node.say, f"{s.node}.say")
        self.listen_for_node(node.listen)

    def exhausted(self, then: Any) -> None:
        if then is not None:
            self.take(then)
        elif self.plan.fallback is not None and self.state.node != self.plan.fallback:
            self.enter(self.plan.fallback)
        else:
            self.end("max_retries")

    # ------------------------------------------------------------------ slot filling

    def begin_ask(self, ask: AskSpec) -> bool:
        """Start collecting `ask.slot`; True when it is already known and the node can go on."""
        s = self.state
        if ask.slot in s.slots:
            return True
        for entity_type in entity_types(ask):
            if entity_type in s.entities:
                value = validate_slot(ask, s.entities[entity_type])
                if value is not None:
                    del s.entities[entity_type]
                    self.log("slot_from_earlier", slot=ask.slot, entity=entity_type)
                    return self.answer(ask, value, continue_node=False)
        if ask.sensitive and not s.recording_paused:
            s.recording_paused = True
            if not s.recording_held:
                self.actions.append(act.SetRecording(paused=True))
        self.prompt_ask(ask, advance=True)
        return False

    def prompt_ask(self, ask: AskSpec, *, advance: bool) -> None:
        self.state.step = "ask"
        self.say_counted(ask.say, f"{self.state.node}.ask", advance=advance)
        self.listen_for_ask(ask)

    def answer(self, ask: AskSpec, value: Any, *, continue_node: bool = True) -> bool:
        """A candidate value (None = not understood). True when filled and the node may continue now."""
        if value is None:
            self.ask_failed(ask, "nomatch")
            return False
        if ask.confirm:
            if ask.sensitive and not self.state.recording_paused:
                self.state.recording_paused = True
                self.actions.append(act.SetRecording(paused=True))
            self.state.candidate = value
            self.ask_confirmation(ask)
            return False
        self.fill(ask, value)
        if continue_node:
            self.run_from("webhook")
        return True

    def ask_confirmation(self, ask: AskSpec) -> None:
        self.state.step = "confirm"
        record = self.state.vars.get(_CANDIDATE_RECORD)
        if record is not None and ask.candidates is not None and ask.candidates.confirm is not None:
            prompt: Any = ask.candidates.confirm  # "Is that your order of running shoes from 2 November?"
        else:
            prompt = ask.confirm if not isinstance(ask.confirm, bool) else phrase("confirm", self.state.lang)
        spoken = slot_types.get(ask.type).read_back(ask, self.state.candidate, self.state.lang)
        masked = {"value": MASK} if ask.sensitive else None
        self.say(prompt, value=spoken, item=record, masked_extra=masked)
        self.listen_for_yes_no(ask)

    def candidate_records(self, ask: AskSpec, *, log: bool = True) -> dict[str, Mapping[str, Any]]:
        """The caller's own records of ask.candidates by their code (none when the template fails or is no list)."""
        spec = ask.candidates
        if spec is None:
            return {}
        try:
            items = self.template(spec.items)
        except TemplateError as exc:
            if log:  # logged once a turn: when the answer is matched
                self.log("error", message=f"candidates of slot {ask.slot!r}: {exc}")
            return {}
        if not isinstance(items, list):
            return {}
        return {str(item[spec.value]): item for item in items if isinstance(item, Mapping) and item.get(spec.value)}

    def known_values(self, ask: AskSpec) -> tuple[str, ...]:
        """Codes this caller is likely to say (their orders, bookings): the recogniser's grammar tries them first."""
        return tuple(self.candidate_records(ask, log=False))

    def answer_from_candidates(self, ask: AskSpec, heard: str, value: Any) -> bool:
        """Match the answer against the caller's own records (ask.candidates); True when that settled the turn."""
        records = self.candidate_records(ask)
        if not records:
            return False
        matches, exact = code_matches(list(records), heard)
        if not matches and value is not None:
            matches, exact = code_matches(list(records), str(value))
        if len(matches) != 1:
            if len(matches) > 1:
                self.log("candidates_ambiguous", slot=ask.slot, count=len(matches))
            return False
        code = matches[0]
        self.log("candidate_match", slot=ask.slot, exact=exact)
        if exact:
            self.answer(ask, code)
            return True
        self.state.candidate = code
        self.state.vars[_CANDIDATE_RECORD] = records[code]
        self.ask_confirmation(ask)
        return True

    def on_confirmation(self, ask: AskSpec, yes: Any) -> None:
        if yes is not None:
            self.state.vars.pop(_CANDIDATE_RECORD, None)
        if yes is True:
            value = self.state.candidate
            self.state.candidate = None
            self.fill(ask, value)
            self.run_from("webhook")
        elif yes is False:
            self.state.candidate = None
            self.log("slot_rejected", slot=ask.slot)
            self.ask_failed(ask, "rejected")
        else:
            self.ask_failed(ask, "nomatch")

    def ask_failed(self, ask: AskSpec, kind: str) -> None:
        s = self.state
        key = f"{s.node}.attempts"
        count = s.counters.get(key, 0) + 1
        s.counters[key] = count
        self.log(kind, slot=ask.slot, count=count, max=ask.max_attempts)
        if count >= ask.max_attempts:
            s.candidate = None
            self.exhausted(ask.on_fail)
            return
        if s.step == "confirm" and kind != "rejected":
            self.say(phrase(kind if kind in ("noinput", "nomatch") else "nomatch", s.lang))
            self.ask_confirmation(ask)
            return
        if ask.reprompts:
            s.step = "ask"
            self.say(ask.reprompts[min(count, len(ask.reprompts)) - 1])
            self.listen_for_ask(ask)
        else:
            if kind in ("noinput", "nomatch"):
                self.say(phrase(kind, s.lang))
            self.prompt_ask(ask, advance=True)

    def fill(self, ask: AskSpec, value: Any) -> None:
        s = self.state
        s.slots[ask.slot] = value
        self.log("slot", slot=ask.slot, value=MASK if ask.sensitive else value)
        if s.recording_paused:
            s.recording_paused = False
            if not s.recording_held:
                self.actions.append(act.SetRecording(paused=False))
        s.step = "enter"

    # ------------------------------------------------------------------ webhooks

    def request_webhook(self, spec: WebhookSpec) -> None:
        args = self.template(spec.args) or {}
        url = str(self.template(spec.url)) if spec.url is not None else None
        headers = {k: str(v) for k, v in (self.template(spec.headers) or {}).items()}
        self.actions.append(act.Webhook(spec.name, url, spec.method, args, headers, spec.timeout_s, spec.retries))

    def on_webhook(self, result: ev.WebhookResult) -> None:
        s = self.state
        if s.step == "lookup":
            if result.ok and isinstance(result.data, Mapping):
                s.caller["profile"] = dict(result.data)
                for key, value in result.data.items():
                    s.caller.setdefault(key, value)
                preferred = result.data.get("lang") or result.data.get("language")
                if isinstance(preferred, str) and match_language(preferred, self.plan.languages):
                    self.switch_language(preferred)  # a known customer is greeted in their own language
            else:
                self.log("lookup_failed", error=result.error)
            self.enter(self.plan.start)
            return
        if s.step != "webhook":
            self.log("event_ignored", event="WebhookResult", step=s.step)
            return
        spec = self.node().webhook
        assert spec is not None
        if result.ok:
            data = result.data
            s.result = {"ok": True, **data} if isinstance(data, Mapping) else {"ok": True, "value": data}
            for var, source in spec.result.items():
                s.vars[var] = self.template(source)
            self.log("webhook_ok", webhook=spec.name or spec.url)
            s.step = "enter"
            self.run_from("exit")
        else:
            s.result = {"ok": False, "error": result.error or "error"}
            self.log("webhook_error", webhook=spec.name or spec.url, error=result.error)
            s.step = "enter"
            self.exhausted(spec.on_error)

    # ------------------------------------------------------------------ knowledge answers

    def request_answer(self, spec: AnswerSpec) -> None:
        """Ask the session to look the caller's question up (its KnowledgeResult continues in on_knowledge)."""
        query = str(self.template(spec.query) or "") if spec.query is not None else self.last_heard()
        if query == MASK:
            query = ""
        if not query.strip() and spec.topic is not None:
            query = (spec.topic if isinstance(spec.topic, str) else pick_language(
                spec.topic, self.state.lang, self.plan.default_lang)) or ""
        tags = tuple(str(self.template(tag) or "") if is_template(tag) else tag for tag in spec.tags)
        self.state.step = "answer"
        self.actions.append(act.Answer(query, self.state.lang, self.plan.knowledge or "", tags, spec.top_k))

    def say_raw(self, text: str) -> None:
        """Speak an article's words as they are (no templating: articles are content, not code)."""
        if not text:
            return
        self.actions.append(act.Say(text, self.state.lang, self.plan.barge_in, None, (text,)))
        self.state.history.append({"who": "bot", "text": text, "node": self.state.node})

    def on_knowledge(self, result: ev.KnowledgeResult) -> None:
        s = self.state
        spec = self.node().answer
        if s.step != "answer" or spec is None:
            self.log("event_ignored", event="KnowledgeResult", step=s.step)
            return
        best = result.hits[0] if result.hits else None
        if best is None or best.score < spec.min_score:
            self.log("knowledge_nomatch", best=best.article if best else "", score=best.score if best else 0.0,
                     min_score=spec.min_score)
            s.step = "enter"
            self.exhausted(spec.nomatch)
            return
        self.log("knowledge_answer", article=best.article, version=best.version, score=best.score,
                 others=",".join(f"{hit.article}:{hit.score}" for hit in result.hits[1:]))
        s.vars[_ANSWER] = {"article": best.article, "version": best.version, "title": best.title,
                           "score": best.score, "short_answer": best.short_answer, "more": best.more}
        self.say_raw(best.short_answer)
        if spec.offer is False:
            s.step = "enter"
            self.take(spec.then)
            return
        self.offer_more(spec)

    def offer_more(self, spec: AnswerSpec) -> None:
        self.say(phrase("answer_offer", self.state.lang) if spec.offer is True else spec.offer)
        self.state.step = "answer_offer"
        self.emit_listen(_YES_NO, "both", 1)

    def on_offer_reply(self, spec: AnswerSpec, heard: ev.Heard, global_route: Any | None) -> None:
        """"more" / yes reads the detail; a global intent (agent) is taken; anything else goes on to `then`."""
        yes = extract_slot(_YES_NO, text=heard.text, intent=heard.intent)
        if yes is False and global_route is None:  # "no more questions" is a no
            self.take(spec.then)
        elif wants_more(heard.text) or (yes is True and global_route is None):
            self.answer_detail(spec)
        elif global_route is not None:
            self.take(global_route)
        else:
            self.take(spec.then)

    def answer_detail(self, spec: AnswerSpec) -> None:
        answer = self.state.vars.get(_ANSWER, {})
        self.log("knowledge_more", article=answer.get("article", ""), version=answer.get("version", 0))
        self.say_raw(str(answer.get("more", "")))
        self.take(spec.then)

    # ------------------------------------------------------------------ queues and transfers

    def queue_spec(self, node: Node) -> QueueSpec | None:
        return node.enqueue or (node.transfer if node.transfer and node.transfer.queue else None)

    def agent_context(self, spec: QueueSpec) -> dict[str, Any]:
        s = self.state
        sensitive = {n.ask.slot for n in self.plan.nodes.values() if n.ask is not None and n.ask.sensitive}
        base = {
            "dialplan": s.dialplan,
            "node": s.node,
            "lang": s.lang,
            "caller": s.caller.get("number", ""),
            "intent": s.last_intent,
            "slots": {k: (MASK if k in sensitive else v) for k, v in s.slots.items()},
        }
        extra = self.template(spec.context) or {}
        return {**base, **extra}

    def enqueue(self, spec: QueueSpec) -> None:
        s = self.state
        skills = tuple(str(self.template(skill)) for skill in spec.skills)
        priority_value = self.template(spec.priority)
        try:
            priority = int(priority_value)
        except (TypeError, ValueError):
            self.log("template_error", message=f"priority {priority_value!r} is not a number")
            priority = 0
        s.step = "queue"
        self.actions.append(act.Enqueue(str(self.template(spec.queue)), skills, priority, self.agent_context(spec)))

    def on_queue_update(self, update: ev.QueueUpdate) -> None:
        s = self.state
        spec = self.queue_spec(self.node())
        if s.step != "queue" or spec is None:
            self.log("event_ignored", event="QueueUpdate", step=s.step)
            return
        s.vars["queue_position"] = update.position
        s.vars["queue_ewt_s"] = update.ewt_s
        minutes = max(1, math.ceil(update.ewt_s / 60))
        if spec.announce_wait:
            told: tuple[float, float] | None = None  # the wait range the caller hears, for the call record
            if update.announcement and not spec.wait_say:
                self.say(update.announcement)
                told = update.told_s
            elif update.ewt_s >= 0 or spec.wait_say:
                self.say(spec.wait_say or phrase("queue_wait", s.lang), position=update.position, minutes=minutes)
                told = ((minutes - 1) * 60.0, minutes * 60.0) if update.ewt_s >= 0 else None  # "about N minutes"
            if told is not None:
                self.log("ewt_announced", low_s=told[0], high_s=told[1], position=update.position)
        if (spec.offer_callback_after is not None and not s.callback_offered
                and update.ewt_s >= spec.offer_callback_after):
            s.callback_offered = True
            s.step = "callback_offer"
            self.say(phrase("callback_offer", s.lang))
            self.emit_listen(_YES_NO, "both", 1, slot=_YES_NO)

    def on_callback_answer(self, accepted: bool) -> None:
        spec = self.queue_spec(self.node())
        assert spec is not None
        if accepted and spec.callback is not None:
            self.log("callback_accepted")
            self.enter(spec.callback)  # leave_current() sends LeaveQueue
        else:
            self.log("callback_declined")
            self.state.step = "queue"

    def on_agent_answered(self, event: ev.AgentAnswered) -> None:
        s = self.state
        if s.step not in (*IN_QUEUE, "transfer"):
            self.log("event_ignored", event="AgentAnswered", step=s.step)
            return
        self.log("agent_answered", agent=event.agent)
        s.step, s.ended, s.end_reason = "ended", True, "agent"

    def on_transfer_failed(self, event: ev.TransferFailed) -> None:
        s = self.state
        node = self.node()
        spec: QueueSpec | TransferSpec | None = node.transfer or node.enqueue
        if s.step not in (*IN_QUEUE, "transfer") or spec is None:
            self.log("event_ignored", event="TransferFailed", step=s.step)
            return
        self.log("transfer_failed", reason=event.reason)
        s.step = "enter"
        self.exhausted(spec.on_failure)


_YES_NO = AskSpec(slot="confirmation", type="yes_no", say="")
_YES_NO_STEPS = ("confirm", "callback_offer")
_CANDIDATE_RECORD = "_candidate_record"  # vars key: the record a near-match code is read back with
_OFFERED_IN = "_language_offered_in"  # vars key: the language the call was in when the other one was offered
_ANSWER = "answer"  # vars key: the article that answered last ({{ vars.answer.title }} in prompts)
_MORE = re.compile(r"\b(more|details?|detailed|explain|tell me everything|full)\b|详细|具体|更多|展开|多说|仔细")


def wants_more(text: str) -> bool:
    """Does the caller ask for the article's detail ("tell me more", "详细说说")?"""
    return bool(_MORE.search(text.lower()))


_AFFIRM, _DENY = ("affirm", "yes"), ("deny", "no")


_FILLERS = frozenset({"um", "umm", "uh", "uhh", "er", "erm", "hmm", "hm", "ah", "eh", "well", "so", "呃", "额", "那个",
                      "这个", "啊"})


def is_hesitation(text: str) -> bool:
    """Only filler sounds ("um", "uh...", "呃"): the caller is thinking, not answering."""
    words = re.findall(r"[a-z]+|[\u3400-\u9fff]+", text.lower())
    return bool(words) and all(word in _FILLERS for word in words)


def confirmation_route(intents: Mapping[str, Any], text: str) -> str | None:
    """The affirm/deny route of a yes-or-no listen that the words answer, when the NLU chose another intent.

    "Yes, please cancel it." reads as cancel_appointment to the NLU, yet it answers "Shall I cancel it?"."""
    affirm = next((name for name in _AFFIRM if name in intents), None)
    deny = next((name for name in _DENY if name in intents), None)
    if affirm is None and deny is None:
        return None
    yes = extract_slot(_YES_NO, text=text)
    if yes is True:
        return affirm
    if yes is False:
        return deny
    return None

def keyed_length(ask: AskSpec) -> int:
    """Keys collected for the ask: its length, else its type's (a date is YYYYMMDD, a choice one key; otherwise
    until the terminator # or the inter-digit timeout)."""
    return ask.length or ask.max_length or slot_types.get(ask.type).keyed_length
