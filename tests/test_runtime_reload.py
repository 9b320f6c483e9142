"""Hot reload: a changed dialplan is swapped for new calls, a broken one is refused and the old one keeps serving."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from voicebot.config import load_server_config
from voicebot.dialplan.actions import Say, Webhook
from voicebot.dialplan.events import CallContext, WebhookResult
from voicebot.dialplan.interpreter import Interpreter
from voicebot.runtime import Runtime
from voicebot.speech.prompts import PromptCache

REPO = Path(__file__).resolve().parents[1]


def greeting_of(interpreter: Interpreter) -> str:
    """What the dialplan says first (after the caller-profile lookup it starts with)."""
    state, actions = interpreter.start(CallContext(caller="+15550100"))
    if any(isinstance(a, Webhook) for a in actions):
        state, actions = interpreter.handle(state, WebhookResult(True, {}))
    return " ".join(a.text for a in actions if isinstance(a, Say))


def greeting(runtime: Runtime) -> str:
    return greeting_of(runtime.interpreters["demo"])


def bump_mtime(path: Path) -> None:
    stat = path.stat()
    os.utime(path, (stat.st_atime + 5, stat.st_mtime + 5))


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    plans = tmp_path / "dialplans"
    plans.mkdir()
    shutil.copy(REPO / "dialplans" / "demo.yaml", plans / "demo.yaml")
    config_file = tmp_path / "voicebot.yaml"
    config_file.write_text(f"dialplans_dir: {plans}\nnlu_dir: {REPO / 'nlu_models'}\n"
                           "routing: {default_dialplan: demo}\ndemo_backend: true\n")
    rt = Runtime(load_server_config(config_file), PromptCache(tmp_path / "cache"))
    rt.load()
    return rt


def test_changed_dialplan_is_swapped_for_new_calls_only(runtime: Runtime) -> None:
    path = Path(runtime.config.dialplans_dir) / "demo.yaml"
    in_progress = runtime.interpreters["demo"]  # a call that started before the change keeps this one
    assert "Acme Telecom" in greeting(runtime)
    path.write_text(path.read_text().replace("Welcome to Acme Telecom", "Hello from Acme Mobile"))
    bump_mtime(path)
    assert runtime.reload_changed() == ["demo"]
    assert "Hello from Acme Mobile" in greeting(runtime)
    assert "Acme Telecom" in greeting_of(in_progress)
    assert runtime.reload_changed() == []  # nothing changed since


def test_broken_dialplan_is_refused_and_the_old_one_keeps_serving(runtime: Runtime,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = Path(runtime.config.dialplans_dir) / "demo.yaml"
    before = runtime.interpreters["demo"]
    path.write_text(path.read_text().replace("goto: verify", "goto: nowhere_node", 1))
    bump_mtime(path)
    with caplog.at_level(logging.ERROR, logger="voicebot.runtime"):
        assert runtime.reload_changed() == []
    assert runtime.interpreters["demo"] is before
    refused = [r for r in caplog.records if r.getMessage().startswith("dialplan reload refused")]
    assert refused
    error = refused[0].fields["error"]  # type: ignore[attr-defined]
    assert "demo.yaml:" in error and "nowhere_node" in error  # file:line and what is wrong
