"""Two voicebot processes sharing one Redis: a caller queued on node A is served by an agent freed on node B,
and node B's restart loses none of the shared queue state.

Real processes on loopback only: a private redis-server, two `voicebot serve` (queues.store: redis, one
namespace, node ids node-a / node-b), the PJSIP softphone as the caller and a sipp phone as the agent. The
caller plays a 1900 Hz tone once it is queued; the agent's phone echoes every RTP packet (-rtp_echo), so the
tone can only come back to the caller through voicebot's bridge → agent → bridge.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.integration.support import (
    api_request as api,
    REPO,
    SCENARIOS,
    ServerProcess,
    free_media_port,
    free_udp_port,
    require_tool,
    start_server,
    stop_server,
)
from voicebot.api.tokens import TokenStore
from voicebot.queues.context import context_id_from_user_to_user

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TONE_HZ = 1900.0
RATE = 8000
FRAME = 160


# ------------------------------------------------------------------------------------------- helpers


class PrivateRedis:
    """A redis-server of this test on a free loopback port (append-only, so a restart keeps the data)."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port), "--bind",
             "127.0.0.1", "--dir", str(directory), "--save", "", "--appendonly", "yes", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        self.client = redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client.ping():
                    break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def records(self, namespace: str, kind: str) -> dict[str, dict]:
        """The JSON records of one state hash (entries, agents, assignments...)."""
        raw = self.client.hgetall(f"voicebot:{namespace}:{kind}")
        return {key: json.loads(value) for key, value in raw.items()}

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    require_tool("redis-server")
    (tmp_path / "redis").mkdir()
    server = PrivateRedis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()




def api_port_of(server: ServerProcess) -> int:
    return int(server.wait_for("api listening")[0]["port"])


def waiting_in(port: int, token: str, queue: str) -> int:
    status, body = api(port, "GET", "/queues", token)
    assert status == 200, body
    return next(q["waiting"] for q in body["queues"] if q["name"] == queue)


def tone_dominant_seconds(audio: np.ndarray, rate: int, hz: float = TONE_HZ) -> float:
    """Seconds of 20 ms frames whose energy is mostly (> 60 %) at ``hz`` (Goertzel)."""
    frame = rate // 50
    samples = audio.astype(np.float64)
    n = len(samples) // frame
    if n == 0:
        return 0.0
    frames = samples[: n * frame].reshape(n, frame)
    t = np.arange(frame) / rate
    ref_cos, ref_sin = np.cos(2 * np.pi * hz * t), np.sin(2 * np.pi * hz * t)
    tone_power = 2 * ((frames @ ref_cos) ** 2 + (frames @ ref_sin) ** 2) / frame
    total_power = (frames ** 2).sum(axis=1) + 1e-9
    loud = total_power / frame > 100 ** 2
    return float(np.count_nonzero(loud & (tone_power / total_power > 0.6))) * frame / rate


def write_caller_audio(path: Path, silent_s: float, tone_s: float) -> None:
    """Silence (the IVR part: nothing for the recogniser), then a steady tone for the bridged part."""
    t = np.arange(int(tone_s * RATE)) / RATE
    tone = (6000 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)
    soundfile.write(str(path), np.concatenate([np.zeros(int(silent_s * RATE), np.int16), tone]), RATE)


# ------------------------------------------------------------------------------------------- the test


def test_caller_queued_on_node_a_is_served_by_agent_freed_on_node_b_across_b_restart(
        tmp_path: Path, private_redis: PrivateRedis) -> None:
    require_tool("sipp")
    namespace = "two" + uuid.uuid4().hex[:10]
    agent_port = free_udp_port()
    (tmp_path / "agents.yaml").write_text(f"""agents:
  - id: a1
    name: Agent One
    sip_uri: sip:agent@127.0.0.1:{agent_port}
    skills: {{billing: 5}}
    languages: [en-US]
    wrap_up_s: 5
  - id: a2
    name: Mandarin Desk
    sip_uri: sip:agent2@127.0.0.1:{free_udp_port()}
    skills: {{billing: 5}}
    languages: [zh-CN]
    wrap_up_s: 5
""")
    (tmp_path / "queues.yaml").write_text("queues:\n  - name: support\n    max_wait_s: 600\n")
    silence = tmp_path / "silence.wav"
    soundfile.write(str(silence), np.zeros(RATE, np.int16), RATE)  # hold audio: nothing to mistake for the tone

    def node_config(node_id: str) -> str:
        return f"""speech: {{workers: 1, asr_model: tiny.en}}
codecs: {{preference: [PCMA, PCMU]}}
queues: {{agents_file: {tmp_path / 'agents.yaml'}, queues_file: {tmp_path / 'queues.yaml'}, ring_timeout_s: 10,
          store: redis, redis_url: "{private_redis.url}", namespace: {namespace}, node_id: {node_id},
          hold_audio: {silence}}}
"""

    dirs = {name: tmp_path / name for name in ("a", "b")}
    tokens: dict[str, str] = {}
    for name, directory in dirs.items():
        directory.mkdir()
        store = TokenStore.load(directory / "tokens.json")
        tokens[f"{name}-admin"] = store.create("admin")
        if name == "b":
            tokens["a1"] = store.create("agent", agent="a1")
            tokens["a2"] = store.create("agent", agent="a2")
        store.save()

    node_a = start_server(dirs["a"], node_config("node-a"), dialplan="demo")
    node_b = start_server(dirs["b"], node_config("node-b"), dialplan="demo")
    agent: subprocess.Popen | None = None
    caller: subprocess.Popen | None = None
    try:
        assert node_a.wait_for("queues ready")[0]["node"] == "node-a"
        assert node_b.wait_for("queues ready")[0]["node"] == "node-b"
        api_b = api_port_of(node_b)
        # An agent who cannot take this caller (wrong language) is available through node B before the restart.
        status, body = api(api_b, "POST", "/agents/a2/state", tokens["a2"], {"state": "available"})
        assert status == 200, body

        caller_wav = tmp_path / "caller.wav"
        write_caller_audio(caller_wav, silent_s=6, tone_s=40)
        heard = tmp_path / "heard.wav"
        caller = subprocess.Popen([sys.executable, "-m", "voicebot.cli", "call", node_a.uri, "--play",
                                   str(caller_wav), "--record", str(heard), "--dtmf", "0", "--dtmf-delay", "3",
                                   "--duration", "40", "--json", "--timeout", "80"], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        queued = node_a.wait_for("caller queued", timeout=40)[0]
        call_id = queued["call_id"]
        assert queued["queue"] == "support"
        entries = private_redis.records(namespace, "entries")
        assert entries[call_id]["node"] == "node-a", entries
        assert waiting_in(api_port_of(node_a), tokens["a-admin"], "support") == 1
        assert waiting_in(api_b, tokens["b-admin"], "support") == 1  # node B sees node A's caller

        # Node B dies hard and comes back: the shared state is still there, and the new B reads it.
        node_b.proc.send_signal(signal.SIGKILL)
        node_b.proc.wait(10)
        assert call_id in private_redis.records(namespace, "entries")
        assert private_redis.records(namespace, "agents")["a2"]["state"] == "available"
        node_b = start_server(dirs["b"], node_config("node-b"), dialplan="demo")
        api_b = api_port_of(node_b)
        assert waiting_in(api_b, tokens["b-admin"], "support") == 1
        status, body = api(api_b, "GET", "/agents/a2/state", tokens["a2"])
        assert (status, body["state"]) == (200, "available"), body

        # The agent who can help logs in through the new node B; node A (which holds the call) rings them.
        (tmp_path / "agent").mkdir()
        (tmp_path / "agent" / "pcap").symlink_to("/usr/share/sip-tester")
        agent_log = tmp_path / "agent" / "headers.log"
        agent = subprocess.Popen(["sipp", "-sf", str(SCENARIOS / "agent_reports_headers.xml"), "-i", "127.0.0.1",
                                  "-p", str(agent_port), "-mi", "127.0.0.1", "-mp", str(free_media_port()),
                                  "-rtp_echo", "-m", "1", "-nostdin", "-timeout", "120s", "-timeout_error",
                                  "-trace_err", "-error_file", str(tmp_path / "agent" / "errors.log"),
                                  "-trace_logs", "-log_file", str(agent_log)],
                                 cwd=tmp_path / "agent", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # sipp binds its port
        status, body = api(api_b, "POST", "/agents/a1/state", tokens["a1"], {"state": "available"})
        assert status == 200, body
        connected = node_a.wait_for("agent connected", timeout=40)[0]
        assert (connected["call_id"], connected["agent"]) == (call_id, "a1")
        assert node_b.records("ringing agent") == []  # only the node holding the call rings the agent
        status, body = api(api_b, "GET", "/agents/a1/state", tokens["a1"])
        assert (status, body["state"], body["call_id"]) == (200, "busy", call_id), body

        out, err = caller.communicate(timeout=90)
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["result"] == "answered", err[-2000:]
        assert agent.wait(30) == 0, (tmp_path / "agent" / "errors.log").read_text(errors="ignore")

        # The agent's phone got the call id and the context id of the caller queued on node A.
        reported = re.search(r"X-Voicebot-Call-Id=(\S+) User-to-User=([0-9a-f]+)", agent_log.read_text())
        assert reported is not None, agent_log.read_text()
        assert reported.group(1) == call_id
        assert context_id_from_user_to_user(reported.group(2) + ";encoding=hex") == entries[call_id]["context_id"]
        # Media was bridged both ways: the caller's tone came back from the agent's phone.
        audio, rate = soundfile.read(str(heard), dtype="int16")
        if audio.ndim > 1:
            audio = audio[:, 0]
        assert tone_dominant_seconds(audio, rate) >= 3.0
    finally:
        for process in (caller, agent):
            if process is not None and process.poll() is None:
                process.kill()
        stop_server(node_b)
        stop_server(node_a)
