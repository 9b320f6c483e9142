"""Callers that are not trunks can be asked for digest credentials (SHA-256 or MD5); PJSIP answers the 401."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.support import REPO, start_server, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

AUTH = """auth:
  challenge_non_trunk: true
  realm: hotline.test
  users: [{username: alice, password_env: VOICEBOT_TEST_ALICE_PW}]"""


def call(server, *extra: str) -> dict:  # type: ignore[no-untyped-def]
    proc = subprocess.run([sys.executable, "-m", "voicebot.cli", "call", server.uri, "--duration", "2", "--json",
                           "--timeout", "20", *extra], cwd=REPO, capture_output=True, text=True, timeout=60)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_only_callers_with_valid_credentials_get_through(tmp_path: Path) -> None:
    server = start_server(tmp_path, AUTH, env={"VOICEBOT_TEST_ALICE_PW": "c0rrect-h0rse"})
    try:
        anonymous = call(server)
        assert anonymous["result"] == "rejected" and anonymous["status_code"] == 401, anonymous
        wrong = call(server, "--username", "alice", "--password", "guess")
        assert wrong["result"] == "rejected" and wrong["status_code"] in (401, 403), wrong
        good = call(server, "--username", "alice", "--password", "c0rrect-h0rse")
        assert good["result"] == "answered", good
        challenged = server.wait_for("INVITE challenged", count=2)
        assert all(entry["src"] == "127.0.0.1" for entry in challenged)
    finally:
        stop_server(server)
