"""Token files are secrets: refused when group/world readable; admin changes made with the CLI are audited."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from voicebot.api.cli import main
from voicebot.api.tokens import TokenFileError, TokenStore
from voicebot.compliance.audit import verify_chain


def test_world_readable_token_file_is_refused(tmp_path: Path) -> None:
    store = TokenStore.load(tmp_path / "tokens.json")
    store.create("admin")
    store.save()
    assert TokenStore.load(tmp_path / "tokens.json").records()
    os.chmod(tmp_path / "tokens.json", 0o644)
    with pytest.raises(TokenFileError, match="group or others|readable|0600"):
        TokenStore.load(tmp_path / "tokens.json")


def test_token_create_and_revoke_are_audited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    audit = tmp_path / "audit.jsonl"
    tokens = tmp_path / "tokens.json"
    monkeypatch.setenv("VOICEBOT_TOKENS_FILE", str(tokens))
    config = tmp_path / "voicebot.yaml"
    config.write_text(f"api: {{audit_log: {audit}}}\n")
    assert main(["token", "--config", str(config), "create", "--role", "supervisor", "--label", "night shift"]) == 0
    secret = capsys.readouterr().out.strip()
    token_id = secret.split("_")[1]
    assert main(["token", "--config", str(config), "revoke", token_id]) == 0
    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [e["action"] for e in entries] == ["token.create", "token.revoke"]
    assert all(e["target"] == token_id for e in entries)
    assert secret not in audit.read_text()  # the token itself is never written anywhere but to stdout once
    assert verify_chain(audit)[0]
