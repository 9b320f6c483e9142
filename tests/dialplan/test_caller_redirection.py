"""The dialplan sees who called and whom they first dialled (SIP identity and Diversion/History-Info); a private
caller's number is used but not written to the call's log events."""

from __future__ import annotations

import textwrap

from voicebot.dialplan import actions as act
from voicebot.dialplan import events as ev
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.schema import Dialplan
from voicebot.yamlsrc import load_yaml_text, validate

PLAN = """
dialplan: forwarded
languages: [en-US]
start: greet
nodes:
  greet:
    say: "Number {{ caller.number }}, first dialled {{ caller.original_called }} ({{ caller.redirect_reason }}), private {{ caller.private }}."
    hangup: true
"""


def _start(context: ev.CallContext) -> list[act.Action]:
    data, lines = load_yaml_text(textwrap.dedent(PLAN), "t.yaml")
    _, actions = Interpreter(validate(Dialplan, data, lines, "t.yaml")).start(context)
    return actions


def test_templates_see_identity_and_redirection() -> None:
    actions = _start(ev.CallContext(caller="+15557654321", original_called="+15550100", redirect_reason="user-busy"))
    said = " ".join(a.text for a in actions if isinstance(a, act.Say))
    assert said == "Number +15557654321, first dialled +15550100 (user-busy), private False."


def test_a_private_callers_number_is_not_logged() -> None:
    actions = _start(ev.CallContext(caller="+15557654321", private=True))
    started = [a for a in actions if isinstance(a, act.LogEvent) and a.kind == "call_started"]
    assert started and started[0].data["caller"] == "anonymous"
    assert "+15557654321" in " ".join(a.text for a in actions if isinstance(a, act.Say))  # still usable
