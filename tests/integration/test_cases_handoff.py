"""After the call (issue 19) over real SIP: the caller (voicebot's softphone) presses 0 and reaches agent a1 (a
sipp phone, the handoff test's setup); the agent picks a disposition on the desktop WebSocket during the call; at
hang-up the server opens a case holding the summary built from the call's record, notifies a webhook receiver on
loopback, and a follow-up time set through the API schedules the callback in the ACD."""

from __future__ import annotations

import asyncio
import http.server
import json
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import soundfile

from tests.integration.support import (REPO, SCENARIOS, api_request, free_media_port, free_udp_port, require_tool,
                                       start_server, stop_server)
from voicebot.api.tokens import TokenStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _receiver() -> tuple[http.server.ThreadingHTTPServer, queue.Queue[tuple[dict, str]]]:
    got: queue.Queue[tuple[dict, str]] = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            got.put((json.loads(body), self.headers.get("Authorization", "")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, got


async def _dispose(api_port: int, token: str, call_id: str, code: str) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{api_port}/ws/agent") as ws:
            await ws.send_json({"type": "auth", "token": token})
            while (await ws.receive_json(timeout=10))["type"] != "hello":
                pass
            await ws.send_json({"type": "disposition", "call_id": call_id, "code": code})
            while True:
                reply = await ws.receive_json(timeout=10)
                if reply["type"] in ("disposition", "error"):
                    return reply


def test_a_call_answered_by_an_agent_leaves_a_case_with_its_summary_disposition_and_follow_up(tmp_path: Path) -> None:
    require_tool("sipp")
    agent_port = free_udp_port()
    (tmp_path / "agents.yaml").write_text(f"""agents:
  - id: a1
    name: Test Agent
    sip_uri: sip:agent@127.0.0.1:{agent_port}
    skills: {{billing: 5}}
    languages: [en-US]
    wrap_up_s: 5
""")
    (tmp_path / "queues.yaml").write_text("queues:\n  - name: support\n    max_wait_s: 600\n")
    tokens = TokenStore.load(tmp_path / "tokens.json")
    agent_token = tokens.create("agent", agent="a1")
    supervisor_token = tokens.create("supervisor")
    tokens.save()
    receiver, received = _receiver()
    server = start_server(tmp_path, f"""speech: {{workers: 1, asr_model: tiny.en}}
codecs: {{preference: [PCMA, PCMU]}}
queues: {{agents_file: {tmp_path / 'agents.yaml'}, queues_file: {tmp_path / 'queues.yaml'}, ring_timeout_s: 10}}
webhook_egress: {{allow: [0.0.0.0/0, "::/0", 127.0.0.1/32]}}
cases: {{webhook_url: "http://127.0.0.1:{receiver.server_address[1]}/sms",
         webhook_headers: {{Authorization: "Bearer ${{VB_TEST_SMS_TOKEN}}"}}}}
""", dialplan="demo", env={"VB_TEST_SMS_TOKEN": "sms-gateway-secret"})
    (tmp_path / "pcap").symlink_to("/usr/share/sip-tester")
    agent = subprocess.Popen(["sipp", "-sf", str(SCENARIOS / "agent_answers.xml"), "-i", "127.0.0.1", "-p",
                              str(agent_port), "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-rtp_echo", "-m",
                              "1", "-nostdin", "-timeout", "120s", "-timeout_error", "-trace_err", "-error_file",
                              str(tmp_path / "agent_errors.log")],
                             cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        api_port = server.wait_for("api listening")[0]["port"]
        status, _ = api_request(api_port, "POST", "/agents/a1/state", agent_token, {"state": "available"})
        assert status == 200
        quiet = tmp_path / "quiet.wav"
        soundfile.write(str(quiet), np.zeros(16 * 8000, dtype=np.int16), 8000)
        caller = subprocess.Popen([sys.executable, "-m", "voicebot.cli", "call", server.uri, "--play", str(quiet),
                                   "--dtmf", "0", "--dtmf-delay", "3", "--duration", "16", "--json", "--timeout",
                                   "60", "--username", "15551234567", "--password", "unused"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        connected = server.wait_for("agent connected", timeout=40)[0]
        call_id = connected["call_id"]
        # during the call the agent picks a disposition on the desktop: it lands in the call's record
        reply = asyncio.run(_dispose(api_port, agent_token, call_id, "callback_promised"))
        assert reply == {"type": "disposition", "call_id": call_id, "code": "callback_promised"}, reply
        out, err = caller.communicate(timeout=90)
        assert json.loads(out.strip().splitlines()[-1])["result"] == "answered", err[-2000:]

        created = server.wait_for("case created", timeout=30)[0]
        assert created["call_id"] == call_id and created["owner"] == "a1"
        status, listed = api_request(api_port, "GET", "/cases", agent_token)
        assert status == 200 and [c["call_id"] for c in listed["cases"]] == [call_id], listed
        case = listed["cases"][0]
        summary = case["summary"]
        # the summary is the record's: compare with the events the server wrote for this call
        with sqlite3.connect(f"file:{tmp_path / 'records' / 'calls.sqlite3'}?mode=ro", uri=True) as db:
            kinds = [k for (k,) in db.execute("SELECT kind FROM call_events WHERE call_id = ? ORDER BY seq",
                                              (call_id,))]
            outcome = db.execute("SELECT outcome FROM calls WHERE call_id = ?", (call_id,)).fetchone()[0]
        assert "disposition" in kinds and kinds.index("disposition") < kinds.index("call_ended"), kinds
        assert summary["outcome"] == outcome == "agent" and summary["reached_agent"] and summary["agent"] == "a1"
        assert summary["disposition"] == "callback_promised" and case["status"] == "open"
        assert summary["articles"] == [] and not summary["identity_verified"]
        assert case["disposition"] == "callback_promised" and case["callback_number"] == "****4567"

        notice, authorization = received.get(timeout=15)
        assert notice["event"] == "case_created" and notice["case"]["id"] == case["id"]
        assert "15551234567" not in json.dumps(notice)
        assert authorization == "Bearer sms-gateway-secret"

        # 回访: a follow-up time puts a callback in the ACD (the agent is in wrap-up: it waits until due)
        at = time.time() + 3600
        status, body = api_request(api_port, "PATCH", f"/cases/{case['id']}", supervisor_token,
                                   {"follow_up_at": at})
        assert status == 200 and body["status"] == "pending" and body["follow_up_at"] == at, body
        notice, _ = received.get(timeout=15)
        assert notice["event"] == "case_updated" and notice["case"]["follow_up_at"] == at
        status, queues = api_request(api_port, "GET", "/queues", supervisor_token)
        assert status == 200 and [q["callbacks_pending"] for q in queues["queues"]] == [1], queues
        status, body = api_request(api_port, "PATCH", f"/cases/{case['id']}", agent_token, {"owner": None})
        assert status == 403, body
        assert agent.wait(30) == 0, (tmp_path / "agent_errors.log").read_text(errors="ignore")
    finally:
        if agent.poll() is None:
            agent.kill()
        stop_server(server)
        receiver.shutdown()
