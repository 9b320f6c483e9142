"""Functional core, imperative shell (DESIGN principle 1): the dialplan interpreter and everything it imports,
transitively, stay free of sockets, threads, processes, network clients and the shell's packages. Read from the
source's module-level import statements (ast): what importing the core loads, parent packages included (importing
voicebot.dialplan.interpreter runs voicebot/dialplan/__init__.py)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "voicebot"
CORE_ENTRY_POINTS = ("voicebot.dialplan.interpreter", "voicebot.dialplan.schema", "voicebot.dialplan.early_endpoint",
                     "voicebot.dialplan.simulate")
SHELL_PACKAGES = ("voicebot.sip", "voicebot.rtp", "voicebot.channels", "voicebot.calls", "voicebot.handoff",
                  "voicebot.queues", "voicebot.api", "voicebot.web", "voicebot.softphone", "voicebot.server",
                  "voicebot.cli", "voicebot.runtime", "voicebot.calls",
                  "voicebot.records", "voicebot.demo_backend", "voicebot.dialplan.webhooks",
                  "voicebot.dialplan.cli", "voicebot.speech.workers")
IO_MODULES = ("asyncio", "socket", "threading", "subprocess", "multiprocessing", "concurrent", "httpx", "aiohttp",
              "selectors", "ssl", "sqlite3", "redis", "psycopg")


def module_path(name: str) -> Path | None:
    relative = Path(*name.split(".")[1:])
    for candidate in (PACKAGE / relative.with_suffix(".py"), PACKAGE / relative / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(name: str) -> set[str]:
    path = module_path(name)
    assert path is not None, name
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in _module_level(ast.parse(path.read_text(), str(path)).body):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if module_path(f"{base}.{alias.name}"))
    return found


def _module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements run when the module is imported (not function bodies, not `if TYPE_CHECKING:` blocks)."""
    out: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                out.extend(_module_level(node.body) + _module_level(node.orelse))
        elif isinstance(node, ast.Try):
            out.extend(_module_level(node.body) + _module_level(node.orelse) + _module_level(node.finalbody))
            for handler in node.handlers:
                out.extend(_module_level(handler.body))
        else:
            out.append(node)
    return out


def with_parents(name: str) -> list[str]:
    """`a.b.c` -> the packages whose __init__ runs first: a, a.b, then a.b.c."""
    parts = name.split(".")
    return [".".join(parts[:index]) for index in range(1, len(parts) + 1)]


def closure(entry_points: tuple[str, ...]) -> dict[str, str]:
    """Every module reachable from the entry points -> the module that imported it first."""
    seen: dict[str, str] = {name: "" for name in entry_points}
    todo = list(entry_points)
    while todo:
        current = todo.pop()
        for imported in {parent for name in imports_of(current) for parent in with_parents(name)}:
            if imported == "voicebot":
                continue
            if imported.startswith("voicebot") and module_path(imported) and imported not in seen:
                seen[imported] = current
                todo.append(imported)
            elif not imported.startswith("voicebot") and imported not in seen:
                seen[imported] = current
    return seen


def chain(seen: dict[str, str], name: str) -> str:
    links = [name]
    while seen.get(links[-1]):
        links.append(seen[links[-1]])
    return " <- ".join(links)


def test_the_dialplan_core_never_imports_the_shell_or_io():
    seen = closure(CORE_ENTRY_POINTS)
    shell = [chain(seen, m) for m in seen if m.startswith(SHELL_PACKAGES)]
    io = [chain(seen, m) for m in seen if m.split(".")[0] in IO_MODULES]
    assert not shell, "the core imports the shell:\n" + "\n".join(shell)
    assert not io, "the core does I/O:\n" + "\n".join(io)


def test_the_checker_sees_an_import_of_the_shell(tmp_path: Path):
    assert "voicebot.sip.message" in closure(("voicebot.sip.ua",))  # the scan follows real imports
