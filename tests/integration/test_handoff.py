"""Handoff to a human agent over real SIP: queue, ring the agent with context headers, bridge media both ways.

The caller (PJSIP softphone) asks for an agent by keypad; the agent is a sipp phone that checks
X-Voicebot-Call-Id / User-to-User and echoes every RTP packet it hears. The caller's later speech can only come
back to the caller through voicebot's bridge → agent → bridge, so re-recognising what the caller heard proves
media flows both ways.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.integration.support import (REPO, SCENARIOS, api_request, free_media_port, free_udp_port, require_tool, start_server,
                                       stop_server)
from voicebot.api.tokens import TokenStore
from voicebot.speech.asr import WhisperAsr
from voicebot.speech.resample import resample

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FIXTURES = REPO / "tests" / "audio_fixtures"




def test_caller_reaches_agent_with_context_and_both_hear_each_other(tmp_path: Path) -> None:
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
    tokens.save()
    server = start_server(tmp_path, f"""speech: {{workers: 2, asr_model: base}}
codecs: {{preference: [PCMA, PCMU]}}
queues: {{agents_file: {tmp_path / 'agents.yaml'}, queues_file: {tmp_path / 'queues.yaml'}, ring_timeout_s: 10}}
""", dialplan="demo")
    (tmp_path / "pcap").symlink_to("/usr/share/sip-tester")
    agent = subprocess.Popen(["sipp", "-sf", str(SCENARIOS / "agent_answers.xml"), "-i", "127.0.0.1", "-p",
                              str(agent_port), "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-rtp_echo", "-m",
                              "1", "-nostdin", "-timeout", "120s", "-timeout_error", "-trace_err", "-error_file",
                              str(tmp_path / "agent_errors.log")],
                             cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        api_port = server.wait_for("api listening")[0]["port"]
        status, state = api_request(api_port, "POST", "/agents/a1/state", agent_token, {"state": "available"})
        assert status == 200, state
        # Speech starts 9 s into the call: by then the caller pressed 0 (at 3 s) and is talking to the agent.
        audio, rate = soundfile.read(str(FIXTURES / "en_long_talk.wav"), dtype="int16")
        caller_wav = tmp_path / "caller.wav"
        soundfile.write(str(caller_wav), np.concatenate([np.zeros(rate * 9, np.int16), audio]), rate)
        heard = tmp_path / "heard.wav"
        caller = subprocess.Popen([sys.executable, "-m", "voicebot.cli", "call", server.uri, "--play",
                                   str(caller_wav), "--record", str(heard), "--dtmf", "0", "--dtmf-delay", "3",
                                   "--duration", "24", "--json", "--timeout", "60"], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        connected = server.wait_for("agent connected", timeout=40)[0]
        assert connected["agent"] == "a1"
        # While talking, the agent's desktop reads the context the bot gathered; nobody else can.
        call_id = connected["call_id"]
        status, context = api_request(api_port, "GET", f"/calls/{call_id}/context", agent_token)
        assert status == 200, context
        assert context["queue_path"][0]["queue"] == "support"
        assert any(turn["who"] == "bot" for turn in context["transcript"])
        status, _ = api_request(api_port, "GET", f"/calls/{call_id}/context", "vbt_bogus_token")
        assert status == 401
        out, err = caller.communicate(timeout=90)
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["result"] == "answered", err[-2000:]
        assert agent.wait(30) == 0, (tmp_path / "agent_errors.log").read_text(errors="ignore")
        # What the caller heard after the bridge: their own words, back through the agent's phone.
        recording, rec_rate = soundfile.read(str(heard), dtype="int16")
        if recording.ndim > 1:
            recording = recording[:, 0]
        text = WhisperAsr("base").transcribe(resample(recording[rec_rate * 8:], rec_rate, 16000), "en").text.lower()
        assert "story" in text or "weeks" in text or "card" in text, text
    finally:
        if agent.poll() is None:
            agent.kill()
        stop_server(server)
