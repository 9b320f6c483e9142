"""Recordings are reachable only through the authenticated API, by admins and supervisors, and every access is
written to the hash-chained audit log."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.support import SCENARIOS, free_media_port, free_udp_port, run_sipp, start_server, stop_server
from voicebot.api.tokens import TokenStore
from voicebot.compliance.audit import verify_chain

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def fetch(port: int, path: str, token: str | None) -> tuple[int, bytes, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def test_recording_download_needs_the_right_role_and_is_audited(tmp_path: Path) -> None:
    tokens = TokenStore.load(tmp_path / "tokens.json")
    supervisor = tokens.create("supervisor", label="floor manager")
    agent = tokens.create("agent", agent="a1")
    tokens.save()
    server = start_server(tmp_path)
    try:
        result = run_sipp([f"{server.host}:{server.port}", "-sf", str(SCENARIOS / "dtmf_info.xml"), "-m", "1", "-i",
                           "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_media_port())],
                          tmp_path)
        assert result.returncode == 0, result.stderr
        call_id = server.wait_for("call ended")[0]["call_id"]
        api_port = server.wait_for("api listening")[0]["port"]
        path = f"/calls/{call_id}/recording"
        assert fetch(api_port, path, None)[0] == 401
        assert fetch(api_port, path, agent)[0] == 403
        status, body, content_type = fetch(api_port, path, supervisor)
        assert status == 200 and content_type == "audio/wav"
        assert body[:4] == b"RIFF" and len(body) > 8000
        assert fetch(api_port, "/calls/no-such-call/recording", supervisor)[0] == 404
    finally:
        stop_server(server)
    audit_file = tmp_path / "audit" / "audit.jsonl"
    entries = [json.loads(line) for line in audit_file.read_text().splitlines()]
    reads = [e for e in entries if e["action"] == "recording_read"]
    assert len(reads) == 1 and reads[0]["target"] == call_id and reads[0]["actor"].startswith("supervisor:")
    assert any(e["action"] == "auth_failed" for e in entries)  # the anonymous attempt is on record too
    ok, bad_file, bad_line = verify_chain(audit_file)
    assert ok, (bad_file, bad_line)
    # Tampering is detected: rewrite one entry and the chain breaks at that line.
    lines = audit_file.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if '"recording_read"' in line)
    lines[index] = lines[index].replace(call_id, "someone-elses-call")
    audit_file.write_text("\n".join(lines) + "\n")
    assert verify_chain(audit_file)[0] is False
