"""Two voicebot nodes sharing one Redis: a caller queued on node B is answered by a browser agent whose page is
connected to node A. A forwards the page's answer (signalling only) to B at the URL B advertises in its Redis
heartbeat; B bridges its caller to the page's WebRTC leg, and audio flows both ways.

Real processes on loopback: a private redis-server, two `voicebot serve` (shared token file, as in a cluster), the
PJSIP softphone as the caller (plays a 1900 Hz tone, records what it hears) and aiortc as the agent's page (a
440 Hz microphone). An answer while B advertises no URL gets 502 with the reason, at once.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
from aiortc import RTCSessionDescription

from tests.integration.support import REPO, api_request as api, start_server, stop_server
from tests.integration.test_browser_agent_legs import AgentPage
from tests.integration.test_two_nodes import (  # noqa: F401 - private_redis is a fixture
    RATE, PrivateRedis, api_port_of, private_redis, tone_dominant_seconds, write_caller_audio)
from voicebot.api.tokens import TokenStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def dominant_hz(frames: list[np.ndarray]) -> float:
    """The strongest frequency of the last ~2 s the page heard (20 ms frames at 48 kHz, channels interleaved)."""
    channels = max(1, frames[-1].size // 960)
    audio = np.concatenate(frames[-100:]).reshape(-1, channels)[:, 0].astype(np.float64)
    return float(np.argmax(np.abs(np.fft.rfft(audio))) * 48000 / audio.size)


def test_caller_on_node_b_answered_by_browser_agent_through_node_a(tmp_path: Path,
                                                                   private_redis: PrivateRedis) -> None:
    namespace = "fwd" + uuid.uuid4().hex[:10]
    (tmp_path / "agents.yaml").write_text(
        "agents:\n  - {id: b1, name: Browser One, browser: true, skills: {billing: 5}, languages: [en-US],"
        " wrap_up_s: 0}\n")
    (tmp_path / "queues.yaml").write_text("queues:\n  - name: support\n    max_wait_s: 600\n")
    silence = tmp_path / "silence.wav"
    soundfile.write(str(silence), np.zeros(RATE, np.int16), RATE)

    def node_config(node_id: str) -> str:
        return f"""speech: {{workers: 1, asr_model: tiny.en}}
codecs: {{preference: [PCMA, PCMU]}}
queues: {{agents_file: {tmp_path / 'agents.yaml'}, queues_file: {tmp_path / 'queues.yaml'}, ring_timeout_s: 40,
          store: redis, redis_url: "{private_redis.url}", namespace: {namespace}, node_id: {node_id},
          hold_audio: {silence}, heartbeat_s: 5, node_ttl_s: 15}}
"""

    dirs = {name: tmp_path / name for name in ("a", "b")}
    for directory in dirs.values():
        directory.mkdir()
    store = TokenStore.load(dirs["a"] / "tokens.json")  # one token file for the cluster
    admin, agent_token = store.create("admin"), store.create("agent", agent="b1")
    shutil.copy2(dirs["a"] / "tokens.json", dirs["b"] / "tokens.json")

    node_a = start_server(dirs["a"], node_config("node-a"), dialplan="demo")
    node_b = start_server(dirs["b"], node_config("node-b"), dialplan="demo")
    caller: subprocess.Popen | None = None
    try:
        api_a, api_b = api_port_of(node_a), api_port_of(node_b)
        assert node_b.wait_for("api advertised")[0]["url"] == f"http://127.0.0.1:{api_b}"
        caller_wav, heard = tmp_path / "caller.wav", tmp_path / "heard.wav"
        write_caller_audio(caller_wav, silent_s=6, tone_s=40)
        caller = subprocess.Popen([sys.executable, "-m", "voicebot.cli", "call", node_b.uri, "--play",
                                   str(caller_wav), "--record", str(heard), "--dtmf", "0", "--dtmf-delay", "3",
                                   "--duration", "40", "--json", "--timeout", "80"], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        call_id = node_b.wait_for("caller queued", timeout=40)[0]["call_id"]
        # The agent logs in through node A; node B, which holds the caller, rings them (on their page).
        status, body = api(api_a, "POST", "/agents/b1/state", agent_token, {"state": "available"})
        assert status == 200, body
        assert node_b.wait_for("ringing browser agent", timeout=20)[0]["call_id"] == call_id
        assert node_a.records("ringing browser agent") == []
        assignment = next(a for a in private_redis.records(namespace, "assignments").values()
                          if a["agent_id"] == "b1")
        assert (assignment["node"], assignment["call_id"]) == ("node-b", call_id)
        heartbeat_key = f"voicebot:{namespace}:node:node-b"
        advertised = json.loads(private_redis.client.get(heartbeat_key))
        assert advertised["api_url"] == f"http://127.0.0.1:{api_b}"

        async def page_answers_through_a() -> tuple[AgentPage, list[float]]:
            page = AgentPage()
            offer = {"assignment": assignment["id"], "type": "offer", "sdp": await page.offer()}
            url = f"http://127.0.0.1:{api_a}/agents/b1/answer"
            auth = {"Authorization": f"Bearer {agent_token}"}
            async with httpx.AsyncClient(timeout=20, trust_env=False) as http:
                # Node B is live but advertises no API URL (its next beat is seconds away): a clear 502.
                private_redis.client.set(heartbeat_key, json.dumps({"started_at": advertised["started_at"]}),
                                         keepttl=True)
                refused = await http.post(url, json=offer, headers=auth)
                assert refused.status_code == 502, refused.text
                assert "node-b" in refused.json()["error"] and "no API URL" in refused.json()["error"]
                private_redis.client.set(heartbeat_key, json.dumps(advertised), keepttl=True)
                # Another agent's token cannot answer for b1, forwarded or not.
                assert (await http.post(url, json=offer, headers={"Authorization": f"Bearer {admin}"})
                        ).status_code == 403
                answered = await http.post(url, json=offer, headers=auth)
            assert answered.status_code == 200, answered.text
            reply = answered.json()
            assert reply["type"] == "answer" and reply["leg"].startswith(call_id)
            await page.pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
            connected = await asyncio.to_thread(node_b.wait_for, "agent connected", 1, 20)
            assert (connected[0]["call_id"], connected[0]["leg"]) == (call_id, "webrtc")
            levels: list[float] = []
            for _ in range(300):  # the caller's 1900 Hz tone reaches the page (via node B only)
                await asyncio.sleep(0.1)
                if len(page.heard) > 150 and page.rms() > 500 and abs(dominant_hz(page.heard) - 1900) < 30:
                    break
            levels += [page.rms(), dominant_hz(page.heard) if page.heard else 0.0]
            await asyncio.sleep(4)  # the agent's 440 Hz tone plays to the caller meanwhile
            await page.pc.close()  # the agent hangs up
            return page, levels

        page, (rms, hz) = asyncio.run(page_answers_through_a())
        assert rms > 500 and abs(hz - 1900) < 30, (rms, hz)
        assert node_a.wait_for("browser answer forwarded")[0]["node"] == "node-b"
        assert node_a.records("agent connected") == []  # node A only relayed the signalling
        ended = node_b.wait_for("agent call ended", timeout=20)[0]
        assert ended["frames_to_agent"] > 100 and ended["frames_to_caller"] > 100, ended

        out, err = caller.communicate(timeout=90)
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["result"] == "answered", err[-2000:]
        audio, rate = soundfile.read(str(heard), dtype="int16")
        if audio.ndim > 1:
            audio = audio[:, 0]
        assert tone_dominant_seconds(audio, rate, hz=440.0) >= 2.0  # the agent's voice reached the caller
    finally:
        if caller is not None and caller.poll() is None:
            caller.kill()
        stop_server(node_b)
        stop_server(node_a)
