"""`voicebot token --config <the server's YAML>` while the server runs: it writes the server's token file and
audit log (api.tokens_file, api.audit_log), the two writers keep one unbroken hash chain, and tokens for agents
that are not in queues.agents_file are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.support import REPO, api_request, start_server, stop_server
from voicebot.api.tokens import TokenStore
from voicebot.compliance.audit import verify_chain

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def token_cli(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VOICEBOT_TOKENS_FILE", "VOICEBOT_AUDIT_LOG")}
    return subprocess.run([sys.executable, "-m", "voicebot.cli", "token", "--config", str(workdir / "voicebot.yaml"),
                           *args], cwd=REPO, capture_output=True, text=True, timeout=90, env=env, check=False)


def test_cli_and_server_share_one_audit_chain_and_agents_must_exist(tmp_path: Path) -> None:
    admin = TokenStore.load(tmp_path / "tokens.json").create("admin")
    server = start_server(tmp_path)
    created = 0
    try:
        port = server.wait_for("api listening")[0]["port"]
        with ThreadPoolExecutor(max_workers=4) as pool:  # CLI writers racing the server's own audit lines
            runs = [pool.submit(token_cli, tmp_path, "create", "--role", "agent", "--agent", agent)
                    for agent in ("a2", "a3", "a4")]
            logins = [api_request(port, "POST", "/login", None, {"token": admin})[0] for _ in range(30)]
            results = [run.result() for run in runs]
        assert logins == [200] * 30
        assert all(result.returncode == 0 for result in results), [r.stderr for r in results]
        created = len(results)
        for result in results:  # each new token works at once, and the server audits the login after the CLI
            assert api_request(port, "POST", "/login", None, {"token": result.stdout.strip()})[0] == 200

        refused = token_cli(tmp_path, "create", "--role", "agent", "--agent", "nobody")
        assert refused.returncode == 2 and "no agent 'nobody'" in refused.stderr and "a1" in refused.stderr
        assert len(TokenStore.load(tmp_path / "tokens.json").records()) == 1 + created  # nothing was made
    finally:
        stop_server(server)
    audit_file = tmp_path / "audit" / "audit.jsonl"
    entries = [json.loads(line) for line in audit_file.read_text().splitlines()]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert sum(e["action"] == "token.create" for e in entries) == created
    assert sum(e["action"] == "login" for e in entries) == 30 + created
    ok, bad_file, bad_line = verify_chain(audit_file)
    assert ok, (bad_file, bad_line)
    assert not (REPO / "var" / "audit" / "audit.jsonl").exists() or all(
        json.loads(line)["target"] not in {e["target"] for e in entries if e["action"] == "token.create"}
        for line in (REPO / "var" / "audit" / "audit.jsonl").read_text().splitlines())
