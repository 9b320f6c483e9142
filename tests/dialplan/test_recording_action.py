"""`recording: pause|resume` on a node pauses the call recording; a sensitive ask inside keeps it paused."""

from __future__ import annotations

from pathlib import Path

from voicebot.dialplan import actions as act
from voicebot.dialplan.events import CallContext, Keys
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.loader import load_dialplan

PLAN = """
dialplan: payments
start: card
nodes:
  card:
    recording: pause
    ask: {slot: card, type: digits, length: 4, say: "Key the last four digits of your card.", sensitive: true,
          input: dtmf}
    goto: resume
  resume:
    recording: resume
    say: "Thank you."
    hangup: true
"""


def recording_actions(actions: list) -> list[bool]:  # type: ignore[type-arg]
    return [a.paused for a in actions if isinstance(a, act.SetRecording)]


def test_node_pauses_and_resumes_recording_around_a_sensitive_ask(tmp_path: Path) -> None:
    path = tmp_path / "payments.yaml"
    path.write_text(PLAN)
    interpreter = Interpreter(load_dialplan(path))
    state, actions = interpreter.start(CallContext())
    assert recording_actions(actions) == [True]  # one pause, although both the node and the ask want one
    state, actions = interpreter.handle(state, Keys("4242"))
    # The sensitive ask ends but the node-level pause holds until `resume` is entered.
    assert recording_actions(actions) == [False]
    assert any(isinstance(a, act.Say) and a.text == "Thank you." for a in actions)
    says = [a for a in actions if isinstance(a, (act.Say, act.SetRecording))]
    assert isinstance(says[0], act.SetRecording)  # resumed before "Thank you." is spoken
    assert state.recording_held is False


def test_pressing_zero_while_queued_keeps_the_callers_place() -> None:
    from voicebot.dialplan.events import QueueUpdate, WebhookResult

    plan = load_dialplan(Path(__file__).resolve().parents[2] / "dialplans" / "demo.yaml")
    interpreter = Interpreter(plan)
    state, actions = interpreter.start(CallContext(caller="+15550100"))
    state, actions = interpreter.handle(state, WebhookResult(True, {}))
    state, actions = interpreter.handle(state, Keys("0"))  # agent, from the menu
    assert [a.queue for a in actions if isinstance(a, act.Enqueue)] == ["support"]
    state, actions = interpreter.handle(state, QueueUpdate(2, 60.0))
    state, actions = interpreter.handle(state, Keys("0"))  # impatient: presses 0 again while waiting
    assert not [a for a in actions if isinstance(a, (act.Enqueue, act.LeaveQueue))]
    assert state.step == "queue"
