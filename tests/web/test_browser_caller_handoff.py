"""A browser caller reaches a human agent like a phone caller: queued, hold audio, bridged to a SIP or browser agent.

Real everything on loopback: `voicebot serve` (demo dialplan, real speech models), headless Chromium on the "call
us" page as the caller (fake microphone: speech after 2 s of silence), and as agent either the PJSIP phone
(tests/integration/pjsua_agent.py: registers, auto-answers, plays a 1200 Hz tone, records) or a second headless
Chromium on the agent desktop page. The caller presses 0 ("agent" in the demo dialplan's global keys).

What the caller's page hears is measured in the page: an AnalyserNode on the remote stream reports the share of
energy at the hold tone (2200 Hz, the configured hold audio) and at the SIP agent's tone (1200 Hz), and the loudest
level that is not the hold tone. So: hold audio reached the browser while queued (before any agent was available),
then the agent's audio after the bridge; the agent heard the caller's speech (its recording, or its page's level);
voicebot's stereo recording of the browser call holds the caller left and the agent right while bridged.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import soundfile

from tests.integration.support import ServerProcess, api_request, start_server, stop_server
from tests.integration.test_agent_registration import (PASSWORD, AgentPhone, agents_yaml, read_mono, rms, tone,
                                                      tone_share)
from voicebot.api.tokens import TokenStore

from .agent_desk import browser_agent_queues, sign_in_agent
from .conftest import caller_wav
from .test_call_page_browser import click, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

HOLD_HZ, AGENT_HZ = 2200, 1200  # tones speech never concentrates on (en_long_talk: at most 0.2 of its energy there)
TONE_SHARE = 0.8  # a pure tone holds nearly all the energy near its frequency (measured: 0.99+)
AUDIBLE = 0.01  # page-side RMS (full scale 1.0) that only real audio reaches; silence measures 0
SPEECH_RMS = 300  # int16 RMS of looped speech; silence stays far below

TONE_WATCH = """
const [holdHz, agentHz, toneShare] = arguments;
const stream = document.getElementById('remote').srcObject;
const ctx = new AudioContext();
const analyser = ctx.createAnalyser();
analyser.fftSize = 4096;
analyser.smoothingTimeConstant = 0;
ctx.createMediaStreamSource(stream).connect(analyser);
const bins = new Float32Array(analyser.frequencyBinCount), wave = new Float32Array(analyser.fftSize);
const watch = window.toneWatch = {holdShare: 0, agentShare: 0, otherLevel: 0, ticks: 0, lastHoldAt: 0,
                                  sinceHold: () => performance.now() - watch.lastHoldAt};
setInterval(() => {
  analyser.getFloatFrequencyData(bins);
  analyser.getFloatTimeDomainData(wave);
  let level = 0;
  for (const s of wave) level += s * s;
  level = Math.sqrt(level / wave.length);
  const step = ctx.sampleRate / analyser.fftSize;
  let total = 0, hold = 0, agent = 0;
  for (let i = 1; i < bins.length; i++) {
    const power = Math.pow(10, bins[i] / 10), hz = i * step;
    total += power;
    if (Math.abs(hz - holdHz) < 50) hold += power;
    if (Math.abs(hz - agentHz) < 50) agent += power;
  }
  watch.ticks++;
  if (level < 0.005 || !(total > 0)) return;
  watch.holdShare = Math.max(watch.holdShare, hold / total);
  if (hold / total > toneShare) watch.lastHoldAt = performance.now();
  watch.agentShare = Math.max(watch.agentShare, agent / total);
  if (hold / total < 0.3) watch.otherLevel = Math.max(watch.otherLevel, level);
}, 100);
"""


def write_hold_tone(path: Path) -> None:
    t = np.arange(8000 * 4) / 8000
    soundfile.write(str(path), (np.sin(2 * np.pi * HOLD_HZ * t) * 9000).astype(np.int16), 8000)


def call_and_queue(driver: Any, server: ServerProcess, api_port: int) -> dict[str, Any]:
    """The browser caller dials, presses 0 for an agent, is queued and hears the hold tone: the queued record."""
    driver.get(f"http://127.0.0.1:{api_port}/call")
    click(driver, "#call")
    wait_for(driver, "window.voicebotCall.state === 'connected'", 30, "the browser call to connect")
    driver.execute_script(TONE_WATCH, HOLD_HZ, AGENT_HZ, TONE_SHARE)
    click(driver, "#keypad button[data-digit='0']")
    queued = server.wait_for("caller queued", timeout=40)[0]
    assert queued["queue"] == "support"
    # Nobody is available yet: the caller waits and hears the announcement, then the hold audio.
    wait_for(driver, f"window.toneWatch.holdShare > {TONE_SHARE}", 40, "the hold audio to reach the browser")
    assert driver.execute_script("return window.voicebotCall.state;") == "connected"
    return queued


def bridged_recording(server: ServerProcess, call_id: str) -> np.ndarray:
    """voicebot's stereo recording of the browser call (stopped server): its last seconds, bridged to the agent
    (the call ends right after the hang-up: 4 s before the last second)."""
    files = [p for p in server.recordings() if p.name.startswith(call_id + ".")]
    assert len(files) == 1, server.recordings()
    stereo, rate = soundfile.read(str(files[0]), dtype="int16")
    assert stereo.ndim == 2 and rate == 8000
    return stereo[-8000 * 5:-8000]


def reset_watch(driver: Any) -> None:
    driver.execute_script("Object.assign(window.toneWatch, {holdShare: 0, agentShare: 0, otherLevel: 0});")


def test_browser_caller_waits_with_hold_audio_and_is_answered_by_sip_agent(
        tmp_path: Path, chromium: Callable[[Path], Any]) -> None:
    config = agents_yaml(tmp_path, 9)  # the static sip_uri is dead: only the registered phone can be rung
    write_hold_tone(tmp_path / "hold.wav")
    config = config.replace("ring_timeout_s: 10}", f"ring_timeout_s: 20, hold_audio: {tmp_path / 'hold.wav'}}}")
    tokens = TokenStore.load(tmp_path / "tokens.json")
    agent_token = tokens.create("agent", agent="a1")
    tokens.save()
    server = start_server(tmp_path, "speech: {workers: 1, asr_model: tiny.en}\n" + config, dialplan="demo",
                          env={"VOICEBOT_TEST_AGENT_PW": PASSWORD})
    soundfile.write(str(tmp_path / "agent.wav"), tone(5, AGENT_HZ), 8000)
    agent_heard = tmp_path / "agent_heard.wav"
    phone = AgentPhone(server, "alice", PASSWORD, "--play", str(tmp_path / "agent.wav"), "--record",
                       str(agent_heard), "--timeout", "200")
    try:
        phone.wait_for("registration", code=200)
        api_port = server.wait_for("api listening", timeout=120)[0]["port"]
        driver = chromium(_speech_after(tmp_path, 2))
        queued = call_and_queue(driver, server, api_port)
        hold_share = driver.execute_script("return window.toneWatch.holdShare;")
        reset_watch(driver)

        status, state = api_request(api_port, "POST", "/agents/a1/state", agent_token, {"state": "available"})
        assert status == 200, state
        connected = server.wait_for("agent connected", timeout=40)[0]
        assert connected["agent"] == "a1" and connected["leg"] == "sip" and connected["call_id"] == queued["call_id"]
        invite = phone.wait_for("incoming")["msg"]
        headers = dict(line.split(":", 1) for line in invite.split("\r\n")[1:] if ":" in line)
        assert headers["X-Voicebot-Call-Id"].strip() == queued["call_id"]
        # The agent's tone reaches the browser caller through the bridge (SIP 8 kHz -> WebRTC 16 kHz).
        wait_for(driver, f"window.toneWatch.agentShare > {TONE_SHARE}", 20, "the SIP agent to be heard in the page")
        time.sleep(10)  # the agent hears the caller talk for a while (a duration, not a synchronisation)
        agent_share = driver.execute_script("return window.toneWatch.agentShare;")
        since_hold = driver.execute_script("return window.toneWatch.sinceHold();")
        assert since_hold > 8000, f"the hold audio went on after the bridge ({since_hold:.0f} ms ago)"
        click(driver, "#hangup")

        ended = server.wait_for("agent call ended", timeout=20)[0]
        assert ended["hung_up_by"] == "caller" and ended["leg"] == "sip", ended
        assert ended["frames_to_agent"] > 200 and ended["frames_to_caller"] > 200, ended
        phone.wait_for("disconnected", timeout=30)
        phone.finish()
        heard, rate = read_mono(agent_heard)
        assert rms(heard[rate:]) > SPEECH_RMS, f"the SIP agent heard RMS {rms(heard[rate:]):.0f}"
        assert tone_share(heard[rate:], rate, AGENT_HZ) < 0.3  # the caller's speech, not its own tone echoed
        # voicebot's recording of the browser call: the caller left, the agent's tone right while bridged.
        stop_server(server)
        bridged = bridged_recording(server, queued["call_id"])
        assert tone_share(bridged[:, 1], 8000, AGENT_HZ) > TONE_SHARE, "the agent is not on the recording"
        assert rms(bridged[:, 0]) > SPEECH_RMS, f"caller channel RMS {rms(bridged[:, 0]):.0f}"
        print(f"\nhold tone share {hold_share:.2f}, agent tone share {agent_share:.2f}, agent heard RMS "
              f"{rms(heard[rate:]):.0f}, frames to agent/caller {ended['frames_to_agent']}/{ended['frames_to_caller']}")
    finally:
        if phone.proc.poll() is None:
            phone.proc.kill()
        stop_server(server)


def test_browser_caller_waits_with_hold_audio_and_is_answered_by_browser_agent(
        tmp_path: Path, chromium: Callable[[Path], Any]) -> None:
    write_hold_tone(tmp_path / "hold.wav")
    queues = browser_agent_queues(tmp_path, tmp_path / "hold.wav")
    tokens = TokenStore.load(tmp_path / "tokens.json")
    agent_token = tokens.create("agent", agent="a1")
    tokens.save()
    server = start_server(tmp_path, "speech: {workers: 1, asr_model: tiny.en}\n" + queues, dialplan="demo")
    try:
        api_port = server.wait_for("api listening", timeout=120)[0]["port"]
        agent = chromium(caller_wav(tmp_path, "en_long_talk"))  # the agent's fake microphone: speech, looped
        sign_in_agent(agent, api_port, agent_token, available=False)

        caller = chromium(_speech_after(tmp_path, 2))
        queued = call_and_queue(caller, server, api_port)
        hold_share = caller.execute_script("return window.toneWatch.holdShare;")

        click(agent, "#go-available")
        assert server.wait_for("ringing browser agent", timeout=30)[0]["call_id"] == queued["call_id"]
        wait_for(agent, "!document.getElementById('answer').classList.contains('hidden')", 15, "the Answer button")
        click(agent, "#answer")
        connected = server.wait_for("agent connected", timeout=20)[0]
        assert connected["leg"] == "webrtc" and connected["call_id"] == queued["call_id"]
        reset_watch(caller)
        wait_for(agent, "window.voicebotAgentCall.state === 'connected'", 15, "the agent's WebRTC leg to connect")
        # Both browsers hear each other through voicebot (WebRTC 16 kHz both ways, no hold tone any more).
        wait_for(agent, f"window.voicebotAgentCall.peakLevel > {AUDIBLE}", 30, "the caller to be heard by the agent")
        wait_for(caller, f"window.toneWatch.otherLevel > {AUDIBLE}", 30, "the agent to be heard by the caller")
        time.sleep(6)  # a few seconds of conversation (a duration, not a synchronisation)
        caller_heard = caller.execute_script("return window.toneWatch;")
        since_hold = caller.execute_script("return window.toneWatch.sinceHold();")
        assert since_hold > 5000, f"the hold audio went on after the bridge ({since_hold:.0f} ms ago)"
        click(agent, "#hangup-call")

        ended = server.wait_for("agent call ended", timeout=20)[0]
        assert ended["hung_up_by"] == "agent" and ended["leg"] == "webrtc", ended
        assert ended["frames_to_agent"] > 200 and ended["frames_to_caller"] > 200, ended
        wait_for(caller, "window.voicebotCall.state === 'ended'", 15, "the caller's page to end the call")
        status, state = api_request(api_port, "GET", "/agents/a1/state", agent_token)
        assert status == 200 and state["state"] == "wrap_up", state
        agent_peak = agent.execute_script("return window.voicebotAgentCall.peakLevel;")
        # voicebot's recording of the browser call: the caller left, the agent's speech (not the hold tone) right.
        stop_server(server)
        bridged = bridged_recording(server, queued["call_id"])
        assert rms(bridged[:, 1]) > SPEECH_RMS and tone_share(bridged[:, 1], 8000, HOLD_HZ) < 0.3, \
            f"agent channel RMS {rms(bridged[:, 1]):.0f}"
        assert rms(bridged[:, 0]) > SPEECH_RMS, f"caller channel RMS {rms(bridged[:, 0]):.0f}"
        print(f"\nrecording agent/caller RMS {rms(bridged[:, 1]):.0f}/{rms(bridged[:, 0]):.0f}")
        print(f"hold tone share {hold_share:.2f}, caller heard level {caller_heard['otherLevel']:.3f}, agent "
              f"peak {agent_peak:.3f}, frames to "
              f"agent/caller {ended['frames_to_agent']}/{ended['frames_to_caller']}")
    finally:
        stop_server(server)


def _speech_after(tmp_path: Path, silence_s: float) -> Path:
    """The caller's fake microphone: ``silence_s`` of silence (the 0 key goes first), then speech, looped."""
    speech = caller_wav(tmp_path, "en_long_talk")
    audio, rate = soundfile.read(str(speech), dtype="int16")
    out = tmp_path / "caller_mic.wav"
    soundfile.write(str(out), np.concatenate([np.zeros(int(rate * silence_s), np.int16), audio]), rate)
    return out
