"""A browser agent answers a queued SIP caller on the agent desktop page; both hear each other.

Real everything on loopback: `voicebot serve` (demo dialplan, real speech models), the PJSIP softphone as the
caller (presses 0 for an agent, then talks), headless Chromium with a fake microphone as the agent (signs in,
goes available, gets the screen-pop, answers over WebRTC, hangs up). Checks, by energy: the caller's own recording
holds the agent's voice after the bridge (hold audio is silent here, so nothing else plays then), voicebot's stereo
recording holds it on the agent channel, and the page's WebAudio analyser heard the caller. Only the agent's own
token may answer; after the call the agent is in wrap-up. A screenshot is kept in tmp_path.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import soundfile

from tests.integration.support import REPO, api_request, start_server, stop_server
from voicebot.api.tokens import TokenStore

from .agent_desk import browser_agent_queues, go_available, sign_in_agent
from .conftest import FIXTURES, caller_wav
from .test_call_page_browser import click, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

AUDIBLE = 0.01  # page-side RMS (full scale 1.0) that only real audio reaches; silence measures 0
SPEECH_RMS = 300  # int16 RMS over seconds of looped speech; silence and comfort noise stay far below


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if audio.size else 0.0


def bridged_part(audio: np.ndarray, rate: int, bridged_s: float) -> np.ndarray:
    """The bridged stretch of a call recording, aligned on its end (the call ends right after the hang-up, while
    its start depends on how fast the caller's process started): 1 s margin after the bridge, 1.5 s before the end."""
    end = len(audio)
    return audio[max(0, end - int(rate * (bridged_s - 1.0))):end - int(rate * 1.5)]


def agent_state(port: int, token: str) -> dict[str, Any]:
    status, body = api_request(port, "GET", "/agents/a1/state", token)
    assert status == 200, body
    return body


def test_browser_agent_answers_queued_sip_caller_and_both_hear_each_other(
        tmp_path: Path, chromium: Callable[[Path], Any]) -> None:
    queues = browser_agent_queues(tmp_path, other_agents="""  - id: a2
    name: Other Agent
    browser: true
    skills: {sales: 5}
    languages: [en-US]
""")
    tokens = TokenStore.load(tmp_path / "tokens.json")
    token_a1, token_a2, admin = tokens.create("agent", agent="a1"), tokens.create("agent", agent="a2"), \
        tokens.create("admin")
    tokens.save()
    server = start_server(tmp_path, "speech: {workers: 1, asr_model: tiny.en}\n" + queues, dialplan="demo")
    caller: subprocess.Popen[str] | None = None
    try:
        api_port = server.wait_for("api listening", timeout=120)[0]["port"]
        driver = chromium(caller_wav(tmp_path, "en_long_talk"))  # the agent's fake microphone, looped
        sign_in_agent(driver, api_port, token_a1, available=False)
        assert driver.execute_script("return document.getElementById('accept').classList.contains('hidden')")
        go_available(driver)

        # The caller: silent while pressing 0 (at 2 s) and being queued, then talks from 8 s on.
        talk, rate = soundfile.read(str(FIXTURES / "en_long_talk.wav"), dtype="int16")
        voice = np.concatenate([np.zeros(rate * 8, np.int16)] + [talk] * max(1, int(40 * rate / talk.size)))
        soundfile.write(str(tmp_path / "caller.wav"), voice, rate)
        heard = tmp_path / "heard.wav"
        started = time.monotonic()
        caller = subprocess.Popen([sys.executable, "-m", "voicebot.cli", "call", server.uri, "--play",
                                   str(tmp_path / "caller.wav"), "--record", str(heard), "--dtmf", "0",
                                   "--dtmf-delay", "2", "--duration", "50", "--json", "--timeout", "70"],
                                  cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ringing = server.wait_for("ringing browser agent", timeout=40)[0]
        assert ringing["agent"] == "a1"
        wait_for(driver, "!document.getElementById('call').classList.contains('hidden')", 10, "the screen-pop")
        wait_for(driver, "!document.getElementById('answer').classList.contains('hidden')", 5, "the Answer button")
        assignment = agent_state(api_port, token_a1)["assignment"]
        assert assignment and agent_state(api_port, token_a1)["state"] == "reserved"

        # Only a1's own token may answer a1's call; unknown assignments are refused without side effects.
        offer = {"assignment": assignment, "type": "offer", "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"}
        assert api_request(api_port, "POST", "/agents/a1/answer", token_a2, offer)[0] == 403
        assert api_request(api_port, "POST", "/agents/a1/answer", admin, offer)[0] == 403
        assert api_request(api_port, "POST", "/agents/a1/answer", None, offer)[0] == 401
        assert api_request(api_port, "POST", "/agents/a1/answer", token_a1,
                           {**offer, "assignment": "nope#1"})[0] == 404
        status, body = api_request(api_port, "POST", "/agents/a1/answer", token_a1, {"assignment": assignment})
        assert status == 400 and "offer" in body["error"]

        click(driver, "#answer")
        connected = server.wait_for("agent connected", timeout=20)[0]
        connected_at = time.monotonic() - started
        assert connected["agent"] == "a1" and connected["leg"] == "webrtc"
        wait_for(driver, "window.voicebotAgentCall.state === 'connected'", 15, "the WebRTC leg to connect")
        assert agent_state(api_port, token_a1)["state"] == "busy"
        # The caller's words (from 8 s into the call) reach the agent's page.
        wait_for(driver, f"window.voicebotAgentCall.peakLevel > {AUDIBLE}", 30, "the caller to be heard in the page")
        time.sleep(max(0.0, 8.0 - (time.monotonic() - started - connected_at)))  # 8 s of conversation
        driver.save_screenshot(str(tmp_path / "browser_agent_call.png"))
        hung_up_at = time.monotonic() - started
        click(driver, "#hangup-call")

        ended = server.wait_for("agent call ended", timeout=15)[0]
        assert ended["hung_up_by"] == "agent", ended
        assert ended["frames_to_agent"] > 200 and ended["frames_to_caller"] > 200, ended
        out, err = caller.communicate(timeout=40)
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["result"] == "answered", err[-2000:]
        wait_for(driver, "window.voicebotAgentCall.state === 'ended'", 10, "the page to end the call")
        assert agent_state(api_port, token_a1)["state"] == "wrap_up"
        page_peak = driver.execute_script("return window.voicebotAgentCall.peakLevel;")
        assert page_peak > AUDIBLE

        # What the caller heard while bridged: the agent's voice (the hold audio before it is silence).
        recording, rec_rate = soundfile.read(str(heard), dtype="int16")
        recording = recording[:, 0] if recording.ndim > 1 else recording
        window = bridged_part(recording, rec_rate, hung_up_at - connected_at)
        assert window.size > rec_rate * 3
        assert rms(window) > SPEECH_RMS, f"caller heard RMS {rms(window):.0f} while bridged"

        # voicebot's stereo recording of the call: caller on the left, the agent on the right while bridged.
        stop_server(server)
        stereo_files = [p for p in server.recordings() if "agent" not in p.name]
        assert len(stereo_files) == 1, server.recordings()
        stereo, stereo_rate = soundfile.read(str(stereo_files[0]), dtype="int16")
        assert stereo.ndim == 2 and stereo_rate == 8000
        bridged = bridged_part(stereo, 8000, hung_up_at - connected_at)
        assert rms(bridged[:, 1]) > SPEECH_RMS, f"agent channel RMS {rms(bridged[:, 1]):.0f}"
        assert rms(bridged[:, 0]) > SPEECH_RMS, f"caller channel RMS {rms(bridged[:, 0]):.0f}"
        print(f"\nbridged {hung_up_at - connected_at:.1f} s: caller heard RMS {rms(window):.0f}, recording "
              f"agent/caller RMS {rms(bridged[:, 1]):.0f}/{rms(bridged[:, 0]):.0f}, page peak {page_peak:.3f}, "
              f"frames to agent/caller {ended['frames_to_agent']}/{ended['frames_to_caller']}")
        assert (tmp_path / "browser_agent_call.png").stat().st_size > 10_000
    finally:
        if caller is not None and caller.poll() is None:
            caller.kill()
        stop_server(server)
