"""Writing a dialplan's picture: Graphviz `dot` when installed, else the built-in SVG (the shell side of graph.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from voicebot.dialplan.graph import to_dot, to_svg
from voicebot.dialplan.schema import Dialplan


def render_graph(plan: Dialplan, output: Path, *, use_dot: bool = True) -> str:
    """Write the picture to `output` (.svg, .png, .pdf or .dot); returns the renderer used: dot or python."""
    suffix = output.suffix.lower().lstrip(".")
    if suffix == "dot":
        output.write_text(to_dot(plan), encoding="utf-8")
        return "dot-source"
    dot = shutil.which("dot") if use_dot else None
    if dot is not None:
        fmt = suffix if suffix in ("svg", "png", "pdf") else "svg"
        subprocess.run([dot, f"-T{fmt}", "-o", str(output)], input=to_dot(plan).encode("utf-8"),
                       check=True, capture_output=True, timeout=60)
        return "graphviz"
    if suffix not in ("svg", ""):
        raise ValueError(f"without Graphviz 'dot' only .svg or .dot can be written, not .{suffix}")
    output.write_text(to_svg(plan), encoding="utf-8")
    return "python"
