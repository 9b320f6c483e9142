"""The dialplan as a graph: static edges, reachability, busy loops, and DOT / SVG pictures."""

from __future__ import annotations

import html
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

from voicebot.dialplan.schema import Dialplan, Node, transition_spec
from voicebot.dialplan.templates import is_template

__all__ = [
    "Edge",
    "GLOBAL",
    "FALLBACK",
    "busy_loops",
    "edges",
    "reachable",
    "target_names",
    "to_dot",
    "to_svg",
]

GLOBAL = "(global)"
FALLBACK = "(fallback)"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str


def target_names(target: str, plan: Dialplan) -> list[str]:
    """The node names a target can mean: itself, or for a template every quoted node name in it."""
    if not is_template(target):
        return [target]
    literals = re.findall(r"""['"]([A-Za-z_][A-Za-z0-9_.-]*)['"]""", target)
    return [name for name in dict.fromkeys(literals) if name in plan.nodes]


def _transition(source: str, transition: Any, label: str, plan: Dialplan) -> list[Edge]:
    if transition is None:
        return []
    spec = transition_spec(transition)
    if spec.goto is None:
        return []
    return [Edge(source, name, label) for name in target_names(spec.goto, plan)]


def _node_edges(name: str, node: Node, plan: Dialplan) -> list[Edge]:
    out: list[Edge] = []
    if node.ask is not None:
        out += _transition(name, node.ask.on_fail, "ask failed", plan)
    if node.webhook is not None:
        out += _transition(name, node.webhook.on_error, "webhook error", plan)
    if node.listen is not None:
        for intent, transition in node.listen.intents.items():
            out += _transition(name, transition, intent, plan)
        for keys, transition in node.listen.dtmf.items():
            out += _transition(name, transition, f"#{keys}", plan)
        out += _transition(name, node.listen.noinput.then, "noinput", plan)
        out += _transition(name, node.listen.nomatch.then, "nomatch", plan)
    if node.answer is not None:
        out += _transition(name, node.answer.then, "answered", plan)
        out += _transition(name, node.answer.nomatch, "no answer", plan)
    if node.branch is not None:
        for case in node.branch:
            label = "else" if case.else_ is not None else f"if {case.if_}"
            out += [Edge(name, target, label) for target in target_names(case.target, plan)]
    if node.goto is not None:
        out += [Edge(name, target, "goto") for target in target_names(node.goto, plan)]
    for spec in (node.transfer, node.enqueue):
        if spec is not None:
            if spec.callback is not None:
                out += [Edge(name, target, "callback") for target in target_names(spec.callback, plan)]
            out += _transition(name, spec.on_failure, "transfer failed", plan)
    if node.call is not None:
        out += [Edge(name, target, "call") for target in target_names(node.call.node, plan)]
        out += [Edge(name, target, "after call") for target in target_names(node.call.then, plan)]
    return out


def edges(plan: Dialplan) -> list[Edge]:
    """Every transition written in the dialplan; global handlers start at GLOBAL, the fallback at FALLBACK."""
    out: list[Edge] = []
    for intent, transition in plan.global_.intents.items():
        out += _transition(GLOBAL, transition, intent, plan)
    for keys, transition in plan.global_.dtmf.items():
        out += _transition(GLOBAL, transition, f"#{keys}", plan)
    if plan.fallback is not None:
        out.append(Edge(FALLBACK, plan.fallback, "fallback"))
    if plan.out_of_scope is not None:
        for name in plan.out_of_scope.nodes:
            out += _transition(name, plan.out_of_scope.person, "out of scope", plan)
    for name, node in plan.nodes.items():
        out += _node_edges(name, node, plan)
    return list(dict.fromkeys(out))


def reachable(plan: Dialplan) -> set[str]:
    """Nodes a call can reach from the start (global handlers and the fallback are reachable anywhere)."""
    graph: dict[str, list[str]] = {}
    for edge in edges(plan):
        graph.setdefault(edge.source, []).append(edge.target)
    seen: set[str] = set()
    queue = deque([plan.start, GLOBAL, FALLBACK])
    while queue:
        name = queue.popleft()
        if name in seen:
            continue
        seen.add(name)
        queue.extend(graph.get(name, []))
    return seen & set(plan.nodes)


def busy_loops(plan: Dialplan) -> list[list[str]]:
    """Cycles made only of nodes that never wait (no listen, ask, webhook, transfer): calls would spin."""
    graph: dict[str, list[str]] = {name: [] for name, node in plan.nodes.items() if not node.waits}
    idle = set(graph)
    for edge in edges(plan):
        if edge.source in idle and edge.target in idle:
            graph[edge.source].append(edge.target)
    loops: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for nxt in graph[name]:
            if state.get(nxt) == 1:
                loops.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name)
    return loops


# ------------------------------------------------------------------------------------------ pictures

_SHAPES = {"listen": "box", "ask": "box", "hangup": "doubleoctagon", "transfer": "house", "enqueue": "house",
           "branch": "diamond", "return": "invhouse"}


def _kind(node: Node) -> str:
    if node.ask is not None and node.exit_kind == "goto":
        return "ask"
    return node.exit_kind


def _dot_id(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(plan: Dialplan) -> str:
    """Graphviz DOT text for the dialplan."""
    lines = [f"digraph {_dot_id(plan.dialplan)} {{", "  rankdir=LR;",
             '  node [fontname="Helvetica", fontsize=11, style=filled, fillcolor="#eef3fb"];',
             '  edge [fontname="Helvetica", fontsize=9];']
    lines.append('  "__start__" [label="start", shape=circle, fillcolor="#c8e6c9"];')
    lines.append(f'  "__start__" -> {_dot_id(plan.start)};')
    used = {e.source for e in edges(plan)}
    for pseudo in (GLOBAL, FALLBACK):
        if pseudo in used:
            lines.append(f'  {_dot_id(pseudo)} [shape=note, fillcolor="#fff3c4"];')
    for name, node in plan.nodes.items():
        kind = _kind(node)
        label = _dot_id(name)[:-1] + "\\n[" + kind + ']"'
        lines.append(f"  {_dot_id(name)} [label={label}, shape={_SHAPES.get(kind, 'ellipse')}];")
    for edge in edges(plan):
        style = ", style=dashed" if edge.source in (GLOBAL, FALLBACK) else ""
        lines.append(f"  {_dot_id(edge.source)} -> {_dot_id(edge.target)} [label={_dot_id(edge.label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(plan: Dialplan) -> str:
    """A dependency-free SVG: nodes layered by distance from the start, edges as labelled lines."""
    names = [plan.start] + [n for n in plan.nodes if n != plan.start]
    all_edges = edges(plan)
    depth: dict[str, int] = {plan.start: 0}
    queue = deque([plan.start])
    graph: dict[str, list[str]] = {}
    for edge in all_edges:
        graph.setdefault(edge.source, []).append(edge.target)
    while queue:
        name = queue.popleft()
        for nxt in graph.get(name, []):
            if nxt not in depth:
                depth[nxt] = depth[name] + 1
                queue.append(nxt)
    extra_layer = max(depth.values(), default=0) + 1
    for pseudo in (GLOBAL, FALLBACK):
        if pseudo in graph:
            names.append(pseudo)
            depth[pseudo] = -1 if pseudo == GLOBAL else extra_layer
    for name in names:
        depth.setdefault(name, extra_layer)
    layers: dict[int, list[str]] = {}
    for name in names:
        layers.setdefault(depth[name], []).append(name)
    box_w, box_h, gap_x, gap_y = 150, 40, 80, 30
    min_layer = min(layers)
    pos: dict[str, tuple[int, int]] = {}
    for layer, members in layers.items():
        for row, name in enumerate(members):
            pos[name] = (20 + (layer - min_layer) * (box_w + gap_x), 20 + row * (box_h + gap_y))
    width = max(x for x, _ in pos.values()) + box_w + 20
    height = max(y for _, y in pos.values()) + box_h + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="Helvetica" font-size="11">',
           '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" orient="auto">'
           '<path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>',
           f"<title>{html.escape(plan.dialplan)}</title>"]
    for edge in all_edges:
        (x1, y1), (x2, y2) = pos[edge.source], pos[edge.target]
        sx, sy, tx, ty = x1 + box_w, y1 + box_h // 2, x2, y2 + box_h // 2
        dash = ' stroke-dasharray="4 3"' if edge.source in (GLOBAL, FALLBACK) else ""
        out.append(f'<line x1="{sx}" y1="{sy}" x2="{tx}" y2="{ty}" stroke="#555"{dash} marker-end="url(#arrow)"/>')
        out.append(f'<text x="{(sx + tx) // 2}" y="{(sy + ty) // 2 - 3}" fill="#336">{html.escape(edge.label)}</text>')
    for name in names:
        x, y = pos[name]
        kind = _kind(plan.nodes[name]) if name in plan.nodes else "handlers"
        fill = "#c8e6c9" if name == plan.start else ("#fff3c4" if name not in plan.nodes else "#eef3fb")
        out.append(f'<g class="node"><rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" '
                   f'fill="{fill}" stroke="#446"/>')
        out.append(f'<text x="{x + 8}" y="{y + 17}" font-weight="bold">{html.escape(name)}</text>')
        out.append(f'<text x="{x + 8}" y="{y + 32}" fill="#666">{html.escape(kind)}</text></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
