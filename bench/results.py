"""Keep what a benchmark run printed, and where and when it ran, in `bench/results/<name>.json`.

    with BenchRecord("redaction") as record:
        print(...)                                   # everything printed is kept as the run's output
        record.row("PII redaction recall", "0.98", command="bench/redaction.py")

A result file holds the commit (and whether the tree had uncommitted changes), the date, the machine (cores, CPU,
memory), the load average before and after, the command line, the full output and the README rows the run
produced. `scripts/readme_figures.py` writes the README's benchmark table from these files, so a figure in the
README always has the run behind it. A run that raises writes nothing.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory and Python of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gib": memory_gib, "python": platform.python_version()}


def revision() -> dict[str, Any]:
    """The commit the run measured and whether the work tree differed from it."""
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return result.stdout.strip()

    # Result files are data, not code: a run after another benchmark wrote its result is not "dirty".
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results")
    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(status)}


class _Tee(io.TextIOBase):
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.kept = io.StringIO()

    def write(self, text: str) -> int:
        self.kept.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


class BenchRecord:
    """Context manager around one benchmark run; see the module docstring."""

    def __init__(self, name: str, *, argv: list[str] | None = None, directory: Path = RESULTS) -> None:
        if not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"result name must be letters, digits, - or _: {name!r}")
        self.name = name
        self.argv = list(sys.argv if argv is None else argv)
        self.path = directory / f"{name}.json"
        self.rows: list[dict[str, str]] = []
        self.data: dict[str, Any] = {}
        self._tee: _Tee | None = None
        self._started: _dt.datetime | None = None
        self._load_before: tuple[float, ...] = ()
        self._revision: dict[str, Any] = {}

    def row(self, what: str, figure: str, *, command: str | None = None) -> None:
        """A line of the README's benchmark table (`command` defaults to this run's own command line)."""
        self.rows.append({"what": what, "figure": figure, "command": command or self.command})

    @property
    def command(self) -> str:
        script = Path(self.argv[0])
        try:
            script = script.resolve().relative_to(REPO)
        except ValueError:
            pass
        return " ".join([str(script), *self.argv[1:]])

    def __enter__(self) -> BenchRecord:
        self._started = _dt.datetime.now(_dt.timezone.utc)
        self._load_before = os.getloadavg()
        self._revision = revision()  # the code that runs is the code at the start
        self._tee = _Tee(sys.stdout)
        sys.stdout = self._tee  # type: ignore[assignment]  # a TextIOBase that tees to the real stdout
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        assert self._tee is not None and self._started is not None
        sys.stdout = self._tee.stream
        if kind is not None:
            return
        finished = _dt.datetime.now(_dt.timezone.utc)
        after = revision()
        result = {
            "bench": self.name,
            **self._revision,
            "commit_changed_during_run": after["commit"] != self._revision["commit"],
            "date": self._started.isoformat(timespec="seconds"),
            "duration_s": round((finished - self._started).total_seconds(), 1),
            "machine": machine(),
            "load_before": [round(x, 2) for x in self._load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "command": self.command,
            "readme": self.rows,
            "data": self.data,
            "output": self._tee.kept.getvalue(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        temporary.replace(self.path)
