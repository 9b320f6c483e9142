"""voicebot.dialplan — the YAML dialplan language, its loader and the pure interpreter.

    from voicebot.dialplan import Interpreter, load_dialplan
    plan = load_dialplan("dialplans/demo.yaml")
    state, actions = Interpreter(plan).start(CallContext(caller="+15551234"))

Reference: docs/dialplan.md.
"""

from voicebot.dialplan.events import CallContext
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.loader import load_dialplan, validate_all
from voicebot.dialplan.schema import Dialplan
from voicebot.dialplan.state import State

__all__ = ["CallContext", "Dialplan", "Interpreter", "State", "load_dialplan", "validate_all"]
