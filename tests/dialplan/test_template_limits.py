"""Memory/CPU bombs in dialplan templates: refused by validation and hot reload, capped at run time."""

from __future__ import annotations

import logging
import os
import resource
import shutil
from pathlib import Path

import pytest

from voicebot.config import load_server_config
from voicebot.dialplan.cli import main
from voicebot.dialplan.template_limits import MAX_OUTPUT_CHARS
from voicebot.dialplan.templates import TemplateError, check_template, evaluate, render
from voicebot.runtime import Runtime
from voicebot.speech.prompts import PromptCache

REPO = Path(__file__).resolve().parents[2]

BOMBS = [
    "{{ 'a' * 300000000 }}",
    "{{ ['a'] * 300000000 }}",
    "{{ 'a'.ljust(300000000) }}",
    "{{ 'a'.center(300000000) }}",
    "{{ '%300000000s' % 'a' }}",
    "{{ '{:>300000000}'.format('a') }}",
    "{{ 2 ** 1000000000 }}",
    "{{ ('ab' * 5000) | replace('', 'zzzzzzzzzz') }}",
    "{{ (('a' * 10000) | list) | join('b' * 10000) }}",
    "{% set x = 'a' * 20000 %}{% set y = x ~ x %}{{ y }}",
    "{% set x %}{% for i in 'a' * 20000 %}{{ 'b' * 20000 }}{% endfor %}{% endset %}{{ x }}",
    "{% for i in 'x' * 20000 %}abcdef{% endfor %}",
]


@pytest.fixture(autouse=True)
def _memory_ceiling():  # type: ignore[no-untyped-def]
    """A broken bound must fail the test, not take the machine: 1 GiB more address space at most."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (used + (1 << 30), hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("source", BOMBS)
def test_validation_refuses_template_bombs(source: str) -> None:
    with pytest.raises(TemplateError, match="too large"):
        check_template(source)


@pytest.mark.parametrize("source", [
    "{{ 'a' * 300 }}{{ caller.number }}", "{{ '%5s' % 'a' }}", "{{ 2 ** 64 }}", "{{ 'x' ~ caller.name ~ 'y' }}",
    "{{ slots.x | default('n') | upper }}", "{% for c in caller.number %}{{ c }} {% endfor %}",
])
def test_ordinary_templates_still_pass(source: str) -> None:
    check_template(source)


@pytest.mark.parametrize("source", ["{{ 'a' | center(300000000) }}", "{{ [[1] * 9999] * 9999 | sum(start=[]) }}",
                                    "{% for a in x %}{% for b in x %}{% endfor %}{% endfor %}",
                                    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}"])
def test_amplifying_constructs_are_not_allowed(source: str) -> None:
    with pytest.raises(TemplateError, match="not allowed"):
        check_template(source)


def test_run_time_values_are_capped_too() -> None:
    context = {"value": 300000000, "result": {"text": "b" * (MAX_OUTPUT_CHARS + 1)}}
    for source in ("{{ 'a' * value }}", "{{ 'a'.rjust(value) }}", "{{ result.text }}"):
        with pytest.raises(TemplateError, match="too large"):
            render(source, context)
    with pytest.raises(TemplateError, match="too large"):
        evaluate("{{ 'a' * value }}", context)
    assert render("{{ 'a' * value }}", {"value": 3}) == "aaa"


def test_validate_cli_rejects_a_memory_bomb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "bomb.yaml"
    shutil.copy(REPO / "tests" / "dialplan" / "broken" / "memory_bomb.yaml", plan)
    assert main(["validate", "--no-nlu", str(plan)]) != 0
    captured = capsys.readouterr()
    assert "bomb.yaml:5:5" in captured.out + captured.err and "too large" in captured.out + captured.err


def test_hot_reload_refuses_a_memory_bomb(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plans = tmp_path / "dialplans"
    plans.mkdir()
    path = plans / "demo.yaml"
    shutil.copy(REPO / "dialplans" / "demo.yaml", path)
    config_file = tmp_path / "voicebot.yaml"
    config_file.write_text(f"dialplans_dir: {plans}\nnlu_dir: {REPO / 'nlu_models'}\n"
                           "routing: {default_dialplan: demo}\ndemo_backend: true\n")
    runtime = Runtime(load_server_config(config_file), PromptCache(tmp_path / "cache"))
    runtime.load()
    before = runtime.interpreters["demo"]
    path.write_text(path.read_text().replace("Welcome to Acme Telecom", '{{ "a" * 300000000 }}', 1))  # in '...' YAML
    stat = path.stat()
    os.utime(path, (stat.st_atime + 5, stat.st_mtime + 5))
    with caplog.at_level(logging.ERROR, logger="voicebot.runtime"):
        assert runtime.reload_changed() == []
    assert runtime.interpreters["demo"] is before
    refused = [r for r in caplog.records if r.getMessage().startswith("dialplan reload refused")]
    assert refused and "too large" in refused[0].fields["error"]  # type: ignore[attr-defined]
