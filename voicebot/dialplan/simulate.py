"""A text REPL over the interpreter: type what the caller says, see what the bot does.

Input lines:  plain text (parsed by the NLU when one is loaded) · `/intent {"entity": value}` (an intent
directly) · `#123` (DTMF) · `!noinput` `!nomatch` `!hangup` · `!ok {json}` / `!error text` (webhook result) ·
`!queue <position> <ewt_s>` `!agent` `!failed` · `!state` (full state JSON) · `!quit`.
"""

from __future__ import annotations

import json
from typing import Any, TextIO, cast

from voicebot.dialplan import actions as act
from voicebot.dialplan import events as ev
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.schema import Dialplan
from voicebot.dialplan.state import State

__all__ = ["SimulationInputError", "parse_line", "simulate"]


class SimulationInputError(ValueError):
    """A REPL line that is not understood."""


def parse_line(line: str, *, nlu: Any = None, lang: str = "en-US") -> ev.Event | str | None:
    """An event for a REPL line; a command name ('state', 'quit') as str; None for a blank line."""
    text = line.strip()
    if not text:
        return None
    if text.startswith("#"):
        digits = text[1:].strip()
        if not digits or any(ch not in "0123456789*#ABCD" for ch in digits):
            raise SimulationInputError(f"{text!r}: DTMF is #digits, e.g. #123")
        return ev.Keys(digits)
    if text.startswith("/"):
        name, _, rest = text[1:].partition(" ")
        entities: dict[str, Any] = {}
        if rest.strip():
            try:
                entities = json.loads(rest)
            except json.JSONDecodeError as exc:
                raise SimulationInputError(f"entities after /{name} must be JSON: {exc.msg}") from None
            if not isinstance(entities, dict):
                raise SimulationInputError('entities are a JSON object, e.g. /pay_bill {"amount": 20}')
        return ev.Heard(text, name, entities)
    if text.startswith("!"):
        return _command(text[1:])
    if nlu is not None:
        result = nlu.parse(text, lang.split("-")[0])
        return ev.Heard(text, result.intent, {e.type: e.value for e in result.entities}, result.confidence,
                        result.lang or None)
    return ev.Heard(text)


def _command(text: str) -> ev.Event | str:
    name, _, rest = text.partition(" ")
    simple: dict[str, ev.Event] = {"noinput": ev.NoInput(), "nomatch": ev.NoMatch(), "hangup": ev.Hangup(),
                                   "agent": ev.AgentAnswered("simulated"), "failed": ev.TransferFailed("simulated")}
    if name in simple:
        return simple[name]
    if name in ("state", "quit"):
        return name
    if name == "ok":
        try:
            data = json.loads(rest) if rest.strip() else {}
        except json.JSONDecodeError as exc:
            raise SimulationInputError(f"!ok takes JSON data: {exc.msg}") from None
        return ev.WebhookResult(True, data)
    if name == "error":
        return ev.WebhookResult(False, None, rest.strip() or "error")
    if name == "queue":
        try:
            position, ewt = rest.split()
            return ev.QueueUpdate(int(position), float(ewt))
        except ValueError:
            raise SimulationInputError("!queue <position> <ewt_seconds>, e.g. !queue 3 120") from None
    raise SimulationInputError(f"unknown command !{name}; try !noinput !nomatch !ok !error !queue !agent "
                               "!failed !hangup !state !quit")


def _describe(action: act.Action) -> str:
    if isinstance(action, act.Say):
        shown = action.text or f"<audio {action.audio}>"
        return f"bot: {shown}" + (f"   [{action.lang}, barge-in {action.barge_in}]")
    if isinstance(action, act.Listen):
        extra = f", max {action.max_digits} digits" if action.max_digits else ""
        return f"  [listen {action.mode}, {action.timeout_ms} ms{extra}]"
    if isinstance(action, act.LogEvent):
        details = {k: v for k, v in action.data.items() if k != "node"}
        return f"  · {action.kind} {json.dumps(details, ensure_ascii=False, default=str)}" if details else \
            f"  · {action.kind} {action.data.get('node', '')}"
    fields = {k: v for k, v in act.action_to_dict(action).items() if k != "action"}
    return f"  > {type(action).__name__} {json.dumps(fields, ensure_ascii=False, default=str)}"


def _summary(state: State) -> str:
    slots = json.dumps(state.slots, ensure_ascii=False, default=str)
    return f"  (node {state.node} · {state.step} · lang {state.lang} · slots {slots})"


def simulate(
    plan: Dialplan,
    lines: TextIO,
    out: TextIO,
    *,
    context: ev.CallContext | None = None,
    nlu: Any = None,
    verbose: bool = False,
    prompt: bool = False,
    knowledge: Any = None,
) -> State:
    """Run the REPL until input ends, the call ends or !quit; returns the final state. `knowledge(Answer) ->
    KnowledgeResult` answers the dialplan's answer: nodes."""
    interpreter = Interpreter(plan)
    state, actions = interpreter.start(context or ev.CallContext(caller="+15550100", channel="simulate"))

    def answered(current: State, batch: list[act.Action]) -> tuple[State, list[act.Action]]:
        while knowledge is not None and batch and isinstance(batch[-1], act.Answer):
            current, more = interpreter.handle(current, knowledge(batch[-1]))
            batch = [*batch, *more]
        return current, batch

    state, actions = answered(state, actions)

    def show(batch: list[act.Action]) -> None:
        for action in batch:
            if isinstance(action, act.LogEvent) and not verbose and action.kind not in ("error", "template_error"):
                continue
            print(_describe(action), file=out)
        print(_summary(state), file=out)

    show(actions)
    while not state.ended:
        if prompt:
            print("caller> ", end="", file=out, flush=True)
        line = lines.readline()
        if not line:
            break
        try:
            event = parse_line(line, nlu=nlu, lang=state.lang)
        except SimulationInputError as exc:
            print(f"  ! {exc}", file=out)
            continue
        if event is None:
            continue
        if event == "quit":
            break
        if event == "state":
            print(state.to_json(), file=out)
            continue
        print(f"caller: {line.strip()}", file=out)
        state, actions = interpreter.handle(state, cast(ev.Event, event))  # the commands (str) are handled above
        state, actions = answered(state, actions)
        show(actions)
    if state.ended:
        print(f"call ended: {state.end_reason}", file=out)
    return state
