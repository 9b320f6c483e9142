"""Agent phones register to voicebot (digest auth) and are rung at their registered Contact.

The agent is a real PJSIP phone (tests/integration/pjsua_agent.py) that registers, auto-answers, plays a 1200 Hz
tone and records; the caller is the pjsua2 softphone (`voicebot call --dtmf 0`) that plays a 700 Hz tone once it
waits in the queue. The agent's static sip_uri points at a dead port, so only the registration can reach it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.integration.support import REPO, ServerProcess, api_request, free_udp_port, start_server, stop_server
from voicebot.api.tokens import TokenStore
from voicebot.queues.context import context_id_from_user_to_user
from voicebot.speech.asr import WhisperAsr
from voicebot.speech.resample import resample

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

AGENT_PHONE = Path(__file__).resolve().parent / "pjsua_agent.py"
PASSWORD = "agent-pw-7f3k"
AGENT_HZ, CALLER_HZ = 1200.0, 700.0


class AgentPhone:
    """The pjsua_agent.py process and the JSON events it printed."""

    def __init__(self, server: ServerProcess, user: str, password: str, *extra: str) -> None:
        self.events: list[dict] = []
        self.proc = subprocess.Popen([sys.executable, str(AGENT_PHONE), "--registrar",
                                      f"sip:127.0.0.1:{server.port}", "--user", user, "--password", password,
                                      *extra], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def wait_for(self, event: str, timeout: float = 30.0, **fields: object) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in list(self.events):
                if entry["event"] == event and all(entry.get(k) == v for k, v in fields.items()):
                    return entry
            time.sleep(0.05)
        raise AssertionError(f"agent phone: no {event} {fields} within {timeout}s; events: {self.events}")

    def finish(self, timeout: float = 30.0) -> None:
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def agents_yaml(tmp_path: Path, dead_port: int) -> str:
    (tmp_path / "agents.yaml").write_text(f"""agents:
  - id: a1
    name: Test Agent
    sip_uri: sip:agent@127.0.0.1:{dead_port}
    sip_user: alice
    sip_password_env: VOICEBOT_TEST_AGENT_PW
    skills: {{billing: 5}}
    languages: [en-US]
    wrap_up_s: 5
""")
    (tmp_path / "queues.yaml").write_text("queues:\n  - name: support\n    max_wait_s: 600\n")
    return (f"queues: {{agents_file: {tmp_path / 'agents.yaml'}, queues_file: {tmp_path / 'queues.yaml'}, "
            f"ring_timeout_s: 10}}\n")


def tone_share(audio: np.ndarray, rate: int, hz: float) -> float:
    """Fraction of the signal's energy within ±60 Hz of ``hz``."""
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    return float(spectrum[np.abs(freqs - hz) < 60].sum() / max(spectrum.sum(), 1e-9))


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if len(audio) else 0.0


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    audio, rate = soundfile.read(str(path), dtype="int16")
    return (audio[:, 0] if audio.ndim > 1 else audio), rate


def tone(seconds: float, hz: float, rate: int = 8000, silence_s: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.concatenate([np.zeros(int(silence_s * rate), np.int16),
                           (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)])


def log_time(entry: dict) -> float:
    return datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).timestamp()


def test_wrong_password_or_unknown_user_cannot_register(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as unset:  # the password's environment variable is missing: no start
        start_server(tmp_path, agents_yaml(tmp_path, free_udp_port()), env={"VOICEBOT_TEST_AGENT_PW": ""})
    assert "agent 'a1' SIP password: environment variable VOICEBOT_TEST_AGENT_PW is empty" in str(unset.value)
    server = start_server(tmp_path, agents_yaml(tmp_path, free_udp_port()),
                          env={"VOICEBOT_TEST_AGENT_PW": PASSWORD})
    try:
        for user, password in (("alice", "guess"), ("mallory", PASSWORD)):
            phone = AgentPhone(server, user, password, "--register-only", "--timeout", "20")
            assert phone.wait_for("registration")["code"] == 403
            phone.finish()
        refused = server.wait_for("REGISTER refused", count=2)
        assert [entry["user"] for entry in refused] == ["alice", "mallory"]
        assert not server.records("agent registered")
        phone = AgentPhone(server, "alice", PASSWORD, "--register-only", "--timeout", "20")
        assert phone.wait_for("registration", code=200)["expires"] == 300
        assert phone.wait_for("registration", code=200, expires=0)
        phone.finish()
        assert server.wait_for("agent registered")[0]["agent"] == "a1"
        assert server.wait_for("agent unregistered")[0]["agent"] == "a1"
        assert not any("guess" in line or PASSWORD in line for line in server.lines)
    finally:
        stop_server(server)


def test_registered_agent_phone_is_rung_with_context_and_both_sides_hear_each_other(tmp_path: Path) -> None:
    dead_port = free_udp_port()
    config = agents_yaml(tmp_path, dead_port)
    tokens = TokenStore.load(tmp_path / "tokens.json")
    agent_token = tokens.create("agent", agent="a1")
    tokens.save()
    server = start_server(tmp_path, "speech: {workers: 2, asr_model: tiny.en}\n" + config, dialplan="demo",
                          env={"VOICEBOT_TEST_AGENT_PW": PASSWORD})
    soundfile.write(str(tmp_path / "agent.wav"), tone(5, AGENT_HZ), 8000)
    soundfile.write(str(tmp_path / "caller.wav"), tone(30, CALLER_HZ, silence_s=12), 8000)
    agent_heard, caller_heard = tmp_path / "agent_heard.wav", tmp_path / "caller_heard.wav"
    phone = AgentPhone(server, "alice", PASSWORD, "--play", str(tmp_path / "agent.wav"), "--record",
                       str(agent_heard), "--timeout", "150")
    caller = None
    try:
        phone.wait_for("registration", code=200)
        registered = server.wait_for("agent registered")[0]
        assert registered["agent"] == "a1" and str(dead_port) not in registered["contact"]
        api_port = server.wait_for("api listening")[0]["port"]
        caller = subprocess.Popen([sys.executable, "-m", "voicebot.cli", "call", server.uri, "--play",
                                   str(tmp_path / "caller.wav"), "--record", str(caller_heard), "--dtmf", "0",
                                   "--dtmf-delay", "3", "--duration", "32", "--json", "--timeout", "80"], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        offered = server.wait_for("call offered", timeout=30)[0]
        queued = server.wait_for("caller queued", timeout=40)[0]
        time.sleep(6)  # the caller waits: position, wait estimate, hold audio
        status, state = api_request(api_port, "POST", "/agents/a1/state", agent_token, {"state": "available"})
        assert status == 200, state
        connected = server.wait_for("agent connected", timeout=30)[0]
        ringing = server.wait_for("ringing agent")[0]
        assert ringing["uri"] == registered["contact"]
        # The phone got voicebot's INVITE at its registered Contact, with the context headers.
        invite = phone.wait_for("incoming")["msg"]
        headers = dict(line.split(":", 1) for line in invite.split("\r\n")[1:] if ":" in line)
        assert headers["X-Voicebot-Call-Id"].strip() == connected["call_id"] == queued["call_id"]
        assert context_id_from_user_to_user(headers["User-to-User"].strip()) == queued["context_id"]
        out, err = caller.communicate(timeout=90)
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["result"] == "answered", err[-2000:]
        phone.wait_for("disconnected", timeout=30)
        phone.wait_for("registration", code=200, expires=0, timeout=15)
        phone.finish()
        assert server.wait_for("agent unregistered")[0]["agent"] == "a1"

        bridged_at = log_time(connected) - log_time(offered)  # seconds into the caller's recording, roughly
        caller_audio, rate = read_mono(caller_heard)
        waiting = caller_audio[int(3.5 * rate):int((bridged_at - 0.5) * rate)]
        after = caller_audio[int((bridged_at + 2) * rate):int((bridged_at + 12) * rate)]
        agent_audio, agent_rate = read_mono(agent_heard)
        figures = {"bridged_at_s": round(bridged_at, 1), "waiting_rms": round(rms(waiting)),
                   "caller_hears_agent_tone": round(tone_share(after, rate, AGENT_HZ), 3),
                   "agent_rms": round(rms(agent_audio)),
                   "agent_hears_caller_tone": round(tone_share(agent_audio[agent_rate:], agent_rate, CALLER_HZ), 3)}
        # While waiting: the position and wait announcement, then hold audio.
        assert figures["waiting_rms"] > 300, figures
        said = WhisperAsr("tiny.en").transcribe(resample(waiting, rate, 16000), "en").text.lower()
        print(figures, repr(said))  # figures for the report (pytest -s)
        assert "next in line" in said or "number" in said or "wait" in said, said
        # After the bridge each side hears the other's tone.
        assert figures["caller_hears_agent_tone"] > 0.6, figures
        assert figures["agent_rms"] > 300 and figures["agent_hears_caller_tone"] > 0.6, figures
    finally:
        if caller is not None and caller.poll() is None:
            caller.kill()
        if phone.proc.poll() is None:
            phone.proc.kill()
        stop_server(server)
