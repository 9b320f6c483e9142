"""Failed logins against a running server: guesses at one token id are limited without ever refusing the valid
token (from the same address), and an anonymous flood writes a few audit lines plus one count, not a line each."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.integration.support import api_request, start_server, stop_server
from voicebot.api.tokens import TokenStore
from voicebot.compliance.audit import verify_chain

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_guessing_never_locks_out_the_valid_token_and_floods_are_aggregated(tmp_path: Path) -> None:
    agent = TokenStore.load(tmp_path / "tokens.json").create("agent", agent="a1")
    agent_id = agent.split("_")[1]
    server = start_server(tmp_path)
    failures = 0
    try:
        port = server.wait_for("api listening")[0]["port"]
        statuses = [api_request(port, "POST", "/login", None, {"token": f"vbt_{agent_id}_guess{i}"})[0]
                    for i in range(6)]
        failures += 6
        assert statuses == [401] * 5 + [429]
        assert api_request(port, "POST", "/login", None, {"token": agent})[0] == 200  # the real one still works
        assert api_request(port, "GET", "/agents/a1/state", agent)[0] == 200
        for _ in range(300):  # anonymous flood: no token, and random token ids
            assert api_request(port, "GET", "/queues", None)[0] == 401
        for _ in range(100):
            assert api_request(port, "GET", "/queues", f"vbt_{secrets.token_hex(6)}_x")[0] == 401
        failures += 400
    finally:
        stop_server(server)
    audit_file = tmp_path / "audit" / "audit.jsonl"
    entries = [json.loads(line) for line in audit_file.read_text().splitlines()]
    written = [e for e in entries if e["action"] == "auth_failed"]
    summaries = [e for e in entries if e["action"] == "auth_failed_suppressed"]
    assert 1 <= len(written) <= 5, len(written)
    assert summaries and all(e["details"]["address"] for e in summaries)
    assert len(written) + sum(e["details"]["count"] for e in summaries) == failures  # every failure accounted for
    assert verify_chain(audit_file)[0]
