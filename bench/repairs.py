"""Task completion on replayed misrecognitions, with and without the dialogue's repairs (issue 14).

bench/data/repair_replays.yaml holds callers' scripts for the five industry dialplans as the recogniser heard them
(letters dropped from codes, short answers garbled, "yes please cancel it", a Mandarin caller in the English menu,
out-of-scope requests). Each script is replayed unchanged through the dialplan's interpreter with its trained NLU,
every webhook performed by the real demo backend over loopback HTTP (as a call session does; a fresh backend for
each call), once with the repairs on and once with `Interpreter(repairs=False)` (voicebot.dialplan.repairs). A call
completes its task when the scenario's goal happened: the webhook performed (with those args), or a queue joined
(with that skill, or with that reason in vars).

    .venv/bin/python bench/repairs.py            # trains each industry's NLU once (~1-2 min on 2 cores)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.results import BenchRecord  # noqa: E402
from voicebot.demo_backend import start_demo_backend  # noqa: E402
from voicebot.dialplan import actions as act  # noqa: E402
from voicebot.dialplan import events as ev  # noqa: E402
from voicebot.dialplan.interpreter import Interpreter  # noqa: E402
from voicebot.dialplan.loader import load_dialplan  # noqa: E402
from voicebot.dialplan.state import State  # noqa: E402
from voicebot.dialplan.webhooks import perform  # noqa: E402
from voicebot.knowledge.base import load_knowledge  # noqa: E402
from voicebot.nlu.base import load_nlu  # noqa: E402

DATA = REPO / "bench" / "data" / "repair_replays.yaml"


@dataclass
class Replay:
    """What one replayed call did."""

    state: State
    actions: list[act.Action] = field(default_factory=list)


def turn_event(turn: str, speaks: str, nlu: Any) -> ev.Event:
    """One scripted turn as the session would report it: keys, no input, unrecognised speech, or text + NLU."""
    if turn.startswith("#"):
        return ev.Keys(turn[1:])
    if turn == "!noinput":
        return ev.NoInput()
    if turn.startswith("!nomatch"):
        lang = turn.removeprefix("!nomatch").strip() or None
        return ev.NoMatch(lang=lang)
    result = nlu.parse(turn, speaks)
    return ev.Heard(turn, result.intent, {e.type: e.value for e in result.entities}, result.confidence, speaks)


def goal_met(goal: dict[str, Any], replay: Replay) -> bool:
    if "webhook" in goal:
        wanted = {k: str(v) for k, v in (goal.get("args") or {}).items()}
        return any(isinstance(a, act.Webhook) and a.name == goal["webhook"]
                   and all(str(a.args.get(k)) == v for k, v in wanted.items()) for a in replay.actions)
    queued = [a for a in replay.actions if isinstance(a, act.Enqueue)]
    if "enqueue_skill" in goal:
        return any(goal["enqueue_skill"] in a.skills for a in queued)
    if "enqueue_reason" in goal:
        return bool(queued) and replay.state.vars.get("reason") == goal["enqueue_reason"]
    raise ValueError(f"unknown goal {goal!r}")


async def replay(scenario: dict[str, Any], interpreter: Interpreter, nlu: Any, knowledge: Any,
                 http: httpx.AsyncClient, endpoints: dict[str, str]) -> Replay:
    """Run the script through the interpreter; webhooks and answers are performed as a call session does."""
    context = ev.CallContext(caller=str(scenario["caller"]), lang=scenario.get("lang"), channel="bench")
    state, actions = interpreter.start(context)
    run = Replay(state)

    async def settle(state: State, actions: list[act.Action]) -> State:
        while True:
            run.actions += actions
            answers = [a for a in actions if isinstance(a, act.Answer)]
            hooks = [a for a in actions if isinstance(a, act.Webhook)]
            if answers:
                state, actions = interpreter.handle(state, knowledge.answer(answers[-1]))
            elif hooks:
                state, actions = interpreter.handle(state, await perform(hooks[-1], http, endpoints=endpoints))
            else:
                return state

    state = await settle(state, actions)
    for turn in scenario["turns"]:
        if state.ended:
            break
        state, actions = interpreter.handle(state, turn_event(str(turn), scenario["speaks"], nlu))
        state = await settle(state, actions)
    run.state = state
    return run


async def run_all(scenarios: list[dict[str, Any]]) -> dict[str, dict[str, bool]]:
    plans = {name: load_dialplan(REPO / "dialplans" / f"{name}.yaml") for name in {s["dialplan"] for s in scenarios}}
    nlus = {name: load_nlu(REPO / "nlu_models" / str(plan.nlu)) for name, plan in plans.items()}
    knowledge = load_knowledge(REPO / "knowledge")
    outcome: dict[str, dict[str, bool]] = {}
    async with httpx.AsyncClient() as http:
        for scenario in scenarios:
            plan = plans[scenario["dialplan"]]
            outcome[scenario["name"]] = {}
            for label, repairs in (("with", True), ("without", False)):
                backend = await start_demo_backend()  # a fresh store: no call sees another's cancellation
                try:
                    result = await replay(scenario, Interpreter(plan, repairs=repairs), nlus[scenario["dialplan"]],
                                          knowledge, http, backend.endpoints())
                finally:
                    await backend.close()
                done = goal_met(scenario["goal"], result)
                outcome[scenario["name"]][label] = done
                said = [a.text for a in result.actions if isinstance(a, act.Say)]
                print(f"  {'done' if done else 'FAIL'} {label:7s} repairs  {scenario['name']}"
                      + ("" if done else f"\n         last said: {said[-1] if said else '-'!r}"))
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    scenarios = yaml.safe_load(args.data.read_text(encoding="utf-8"))["scenarios"]
    with BenchRecord("repairs") as record:
        outcome = asyncio.run(run_all(scenarios))
        kinds = Counter(s["kind"] for s in scenarios)
        by_kind: dict[str, dict[str, int]] = {}
        for scenario in scenarios:
            entry = by_kind.setdefault(scenario["kind"], {"scenarios": kinds[scenario["kind"]], "with": 0, "without": 0})
            for label in ("with", "without"):
                entry[label] += outcome[scenario["name"]][label]
        total = len(scenarios)
        done_with = sum(o["with"] for o in outcome.values())
        done_without = sum(o["without"] for o in outcome.values())
        for kind, entry in by_kind.items():
            print(f"{kind:26s} {entry['with']}/{entry['scenarios']} with repairs, "
                  f"{entry['without']}/{entry['scenarios']} without")
        print(f"task completion over {total} replayed calls: {done_with}/{total} with repairs, "
              f"{done_without}/{total} without")
        record.data.update({"scenarios": total, "completed_with_repairs": done_with,
                            "completed_without_repairs": done_without, "by_kind": by_kind, "calls": outcome})
        record.row(f"Task completion on {total} replayed misrecognitions (codes, short answers, \"yes please "
                   f"cancel it\", language, out of scope; 5 industry dialplans)",
                   f"{done_with}/{total} with repairs, {done_without}/{total} without", command="bench/repairs.py")


if __name__ == "__main__":
    main()
