"""An SRTP agent leg bridged to a plain-RTP caller: the agent's PJSIP phone takes only SRTP (mandatory), the agent's
`media_encryption: required` makes voicebot offer RTP/SAVP with a=crypto, the caller (pjsua2 softphone) speaks plain
RTP; each side hears the other's tone through the bridge, which works on decrypted media."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from tests.integration.support import REPO, api_request, free_udp_port, start_server, stop_server
from tests.integration.test_agent_registration import (
    AGENT_HZ,
    CALLER_HZ,
    PASSWORD,
    AgentPhone,
    agents_yaml,
    read_mono,
    rms,
    tone,
    tone_share,
)
from voicebot.api.tokens import TokenStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_srtp_agent_leg_bridged_to_plain_caller(tmp_path: Path) -> None:
    config = agents_yaml(tmp_path, free_udp_port())
    agents = tmp_path / "agents.yaml"
    agents.write_text(agents.read_text() + "    media_encryption: required\n")
    tokens = TokenStore.load(tmp_path / "tokens.json")
    agent_token = tokens.create("agent", agent="a1")
    tokens.save()
    server = start_server(tmp_path, "speech: {workers: 1, asr_model: tiny.en}\n" + config, dialplan="demo",
                          env={"VOICEBOT_TEST_AGENT_PW": PASSWORD})
    soundfile.write(str(tmp_path / "agent.wav"), tone(5, AGENT_HZ), 8000)
    soundfile.write(str(tmp_path / "caller.wav"), tone(30, CALLER_HZ, silence_s=8), 8000)
    agent_heard, caller_heard = tmp_path / "agent_heard.wav", tmp_path / "caller_heard.wav"
    phone = AgentPhone(server, "alice", PASSWORD, "--play", str(tmp_path / "agent.wav"), "--record",
                       str(agent_heard), "--srtp", "mandatory", "--timeout", "150")
    caller = None
    try:
        phone.wait_for("registration", code=200)
        api_port = server.wait_for("api listening")[0]["port"]
        status, state = api_request(api_port, "POST", "/agents/a1/state", agent_token, {"state": "available"})
        assert status == 200, state
        caller = subprocess.Popen([sys.executable, "-m", "voicebot.cli", "call", server.uri, "--play",
                                   str(tmp_path / "caller.wav"), "--record", str(caller_heard), "--dtmf", "0",
                                   "--dtmf-delay", "3", "--duration", "26", "--json", "--timeout", "80"], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        connected = server.wait_for("agent connected", timeout=60)[0]
        assert connected["agent_srtp"] == "AES_CM_128_HMAC_SHA1_80" and connected["caller_srtp"] is None
        invite = phone.wait_for("incoming")["msg"]
        assert "RTP/SAVP" in invite and "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" in invite
        out, err = caller.communicate(timeout=90)
        assert json.loads(out.strip().splitlines()[-1])["result"] == "answered", err[-2000:]
        phone.wait_for("disconnected", timeout=30)
        phone.finish()
    finally:
        if caller is not None and caller.poll() is None:
            caller.kill()
        if phone.proc.poll() is None:
            phone.proc.kill()
        stop_server(server)
    agent_audio, agent_rate = read_mono(agent_heard)
    caller_audio, rate = read_mono(caller_heard)
    tail = caller_audio[-10 * rate:]  # the caller's last 10 s: bridged to the agent
    figures = {"agent_rms": round(rms(agent_audio)),
               "agent_hears_caller_tone": round(tone_share(agent_audio[agent_rate:], agent_rate, CALLER_HZ), 3),
               "caller_hears_agent_tone": round(tone_share(tail, rate, AGENT_HZ), 3)}
    assert figures["agent_rms"] > 300 and figures["agent_hears_caller_tone"] > 0.6, figures
    assert figures["caller_hears_agent_tone"] > 0.6, figures
