"""A dialplan webhook with no URL (none of its own, none in the config, no demo backend on) is refused with
file:line, the webhook's name and the fix, by `voicebot validate`, by `voicebot serve` and by hot reload."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from voicebot.config import ServerConfig, load_server_config
from voicebot.dialplan.cli import main
from voicebot.dialplan.loader import load_dialplan
from voicebot.dialplan.webhook_urls import demo_hook_names, unresolved_webhooks
from voicebot.runtime import Runtime
from voicebot.speech.prompts import PromptCache
from voicebot.yamlsrc import ConfigErrors, load_yaml

REPO = Path(__file__).resolve().parents[2]
DIALPLANS = REPO / "dialplans"
DEMO_CONFIG = REPO / "sip_config" / "voicebot.yaml"
NODE_CONFIG = REPO / "deploy" / "voicebot" / "node.yaml"
DEMO = DIALPLANS / "demo.yaml"


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def errors_for(path: Path, configured: set[str], demo: bool) -> list[str]:
    _, lines = load_yaml(path)
    return [str(e) for e in unresolved_webhooks(load_dialplan(path), lines, str(path), configured=configured,
                                                  demo_hooks=demo_hook_names(demo))]


# ----------------------------------------------------------------------------------------------- defaults


def test_demo_backend_is_opt_in_and_on_only_in_the_demo_configuration() -> None:
    assert ServerConfig().demo_backend is False
    assert load_server_config(DEMO_CONFIG).demo_backend is True
    assert load_server_config(NODE_CONFIG).demo_backend is False


# ------------------------------------------------------------------------------------------- pure check


def test_every_named_webhook_without_url_is_reported_at_its_line() -> None:
    errors = errors_for(DEMO, configured=set(), demo=False)
    assert errors[0] == (f"{DEMO}:{line_of(DEMO, 'name: demo.lookup')}:3: lookup.name: webhook 'demo.lookup' has "
                         "no URL — add it to the server config's webhooks: {demo.lookup: https://…} or give the "
                         "webhook a url: (demo_backend: true answers the sample hooks with made-up data: demos only)")
    assert [e.split(": ", 2)[1] for e in errors] == ["lookup.name", "nodes.check_pin.webhook.name",
                                                     "nodes.payment.webhook.name"]


def test_configured_urls_and_the_demo_backend_resolve_webhooks() -> None:
    assert errors_for(DEMO, configured={"demo.lookup", "demo.verify", "demo.pay"}, demo=False) == []
    assert errors_for(DEMO, configured=set(), demo=True) == []
    assert [e for e in errors_for(DEMO, configured={"demo.lookup"}, demo=False) if "demo.lookup" in e] == []


def test_a_name_the_demo_backend_does_not_know_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    plan = tmp_path / "demo.yaml"
    plan.write_text(DEMO.read_text().replace("name: demo.verify", "name: demo.verfy"))
    (error,) = errors_for(plan, configured=set(), demo=True)
    assert "nodes.check_pin.webhook.name: webhook 'demo.verfy' has no URL — did you mean 'demo.verify'?" in error


# ---------------------------------------------------------------------------------------------- commands


def test_validate_refuses_webhooks_without_url_under_a_deployment_config(capsys: pytest.CaptureFixture[str]) -> None:
    finance = DIALPLANS / "finance.yaml"
    assert main(["validate", "--no-nlu", "--config", str(NODE_CONFIG), str(finance)]) == 1
    out = capsys.readouterr().out
    assert (f"error: {finance}:{line_of(finance, 'name: finance.verify')}:7: nodes.check_identity.webhook.name: "
            "webhook 'finance.verify' has no URL — add it to the server config's webhooks:") in out
    assert f"ok: {finance}" not in out
    assert main(["validate", "--no-nlu", "--config", str(DEMO_CONFIG), str(finance)]) == 0


def test_serve_refuses_to_start_without_urls_or_demo(tmp_path: Path) -> None:
    config = tmp_path / "voicebot.yaml"
    config.write_text(f"listen: {{host: 127.0.0.1, port: 0}}\napi: {{enabled: false}}\n"
                      f"routing: {{default_dialplan: demo}}\ndialplans_dir: {DIALPLANS}\n"
                      f"nlu_dir: {REPO / 'nlu_models'}\n"
                      "webhook_egress: {allow: [127.0.0.1/32]}\n"
                      "webhooks: {demo.lookup: 'http://127.0.0.1:9/lookup'}\n")
    proc = subprocess.run([sys.executable, "-m", "voicebot.cli", "serve", "--config", str(config)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "voicebot: cannot load dialplans:" in proc.stderr
    assert f"{DEMO}:{line_of(DEMO, 'name: demo.verify')}:7: nodes.check_pin.webhook.name: webhook 'demo.verify'" \
           in proc.stderr
    assert "'demo.lookup'" not in proc.stderr  # configured: it has a URL
    assert "listening on udp" not in proc.stderr


def test_hot_reload_refuses_a_new_webhook_without_url(tmp_path: Path) -> None:
    plans = tmp_path / "dialplans"
    plans.mkdir()
    shutil.copy(DEMO, plans / "demo.yaml")
    config = tmp_path / "voicebot.yaml"
    config.write_text(f"dialplans_dir: {plans}\nnlu_dir: {REPO / 'nlu_models'}\nrouting: {{default_dialplan: demo}}\n"
                      "webhook_egress: {allow: [127.0.0.1/32]}\n"
                      "webhooks: {demo.lookup: 'http://127.0.0.1:9/a', demo.verify: 'http://127.0.0.1:9/b', "
                      "demo.pay: 'http://127.0.0.1:9/c'}\n")
    runtime = Runtime(load_server_config(config), PromptCache(tmp_path / "cache"))
    runtime.load()
    before = runtime.interpreters["demo"]
    path = plans / "demo.yaml"
    path.write_text(path.read_text().replace("name: demo.pay", "name: demo.payment"))
    assert runtime.reload_changed() == []
    assert runtime.interpreters["demo"] is before


def test_runtime_load_raises_located_errors(tmp_path: Path) -> None:
    config = tmp_path / "voicebot.yaml"
    config.write_text(f"dialplans_dir: {DIALPLANS}\nnlu_dir: {REPO / 'nlu_models'}\n"
                      "routing: {default_dialplan: demo}\n")
    with pytest.raises(ConfigErrors) as info:
        Runtime(load_server_config(config), PromptCache(tmp_path / "cache")).load()
    assert [e.message.split(": ", 1)[1] for e in info.value.errors] == [
        "webhook 'demo.lookup' has no URL", "webhook 'demo.verify' has no URL", "webhook 'demo.pay' has no URL"]
