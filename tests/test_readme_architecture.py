"""The README's architecture table names the package's folders one to one (issue 17): every package under
voicebot/ has its row, every row names a folder that exists, and every top-level module is in the shell row."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def table_rows() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("| folder | what lives there |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def named_folders(rows: list[str]) -> list[str]:
    return [name for row in rows for name in re.findall(r"`(voicebot/[\w/]+/)`", row.split("|")[1])]


def test_every_package_has_exactly_one_row_and_every_row_exists():
    packages = sorted(f"{p.parent.relative_to(REPO)}/" for p in (REPO / "voicebot").rglob("__init__.py"))
    packages = [p for p in packages if p != "voicebot/"]
    named = named_folders(table_rows())
    assert sorted(named) == sorted(set(named)), "a folder has two rows"
    assert sorted(named) == packages


def test_the_shell_row_lists_every_top_level_module():
    [shell] = [row for row in table_rows() if "`voicebot/*.py`" in row]
    listed = set(re.findall(r"`(\w+)`", shell.split("|")[2]))
    modules = {p.stem for p in (REPO / "voicebot").glob("*.py") if p.stem != "__init__"}
    assert listed == modules
