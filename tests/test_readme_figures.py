"""The README's benchmark figures come from bench/results/*.json (issue 16): generated, never typed by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scripts.readme_figures import BEGIN, END, FiguresError, load_results, render

REPO = Path(__file__).resolve().parents[1]


def test_readme_table_matches_the_result_files() -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "readme_figures.py"), "--check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def _result(tmp_path: Path, figure: str) -> Path:
    directory = tmp_path / "bench" / "results"
    directory.mkdir(parents=True)
    (directory / "demo.json").write_text(json.dumps({
        "commit": "0123456789abcdef", "dirty": False, "date": "2026-12-07T12:00:00+00:00",
        "load_before": [0.5, 0.4, 0.3], "load_after": [1.2, 0.5, 0.3],
        "readme": [{"what": "demo speed", "figure": figure, "command": "bench/demo.py"}],
    }), encoding="utf-8")
    return directory


def test_a_hand_edited_figure_is_replaced_by_the_measured_one(tmp_path: Path) -> None:
    directory = _result(tmp_path, "42 calls")
    readme = f"intro\n{BEGIN}\n| demo speed | 9000 calls (typed by hand) |\n{END}\nrest\n"
    out = render(readme, load_results(directory))
    assert "9000" not in out and "| demo speed | 42 calls | `bench/demo.py` |" in out
    assert "01234567, 2026-12-07, load 0.5 → 1.2" in out and out.endswith(f"{END}\nrest\n")


def test_missing_markers_and_incomplete_results_are_refused(tmp_path: Path) -> None:
    directory = _result(tmp_path, "1")
    try:
        render("no markers here", load_results(directory))
    except FiguresError as exc:
        assert "markers" in str(exc)
    else:
        raise AssertionError("a README without markers was accepted")
    (directory / "broken.json").write_text('{"commit": "x"}', encoding="utf-8")
    try:
        load_results(directory)
    except FiguresError as exc:
        assert "broken.json" in str(exc) and "missing" in str(exc)
    else:
        raise AssertionError("a result file without its run facts was accepted")
