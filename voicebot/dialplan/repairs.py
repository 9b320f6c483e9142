"""The repairs switch (issue 14): a dialplan as it behaves without the dialogue's repairs, for benchmarks.

Repairs are what lets a call recover from a misrecognition: the out-of-scope path and its calibrated threshold,
the language offer, global intents only when the NLU is sure (`global.min_confidence`), codes matched against the
caller's own records (`candidates:`). The interpreter's own repairs (a yes that restates the action, hesitations
read as no answer) are switched with `Interpreter(..., repairs=False)`, which also applies `without_repairs`.
"""

from __future__ import annotations

from voicebot.dialplan.schema import Dialplan

__all__ = ["without_repairs"]


def without_repairs(plan: Dialplan) -> Dialplan:
    """A copy of `plan` with its repair features off (the dialplan features; see the module docstring)."""
    nodes = {
        name: node.model_copy(update={"ask": node.ask.model_copy(update={"candidates": None})})
        if node.ask is not None and node.ask.candidates is not None else node
        for name, node in plan.nodes.items()
    }
    return plan.model_copy(update={
        "out_of_scope": None,
        "language_offer": None,
        "global_": plan.global_.model_copy(update={"min_confidence": 0.0}),
        "nodes": nodes,
    })
