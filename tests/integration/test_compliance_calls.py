"""Compliance over real SIP: sensitive digits never leak, recording pauses around them, and a recording survives
a kill -9 of the server mid-call.

1. A bank customer (sipp, keypad by SIP INFO, a quiet 50 Hz hum on the line the whole call) goes through the
   finance dialplan's identity check with distinctive digits (ID last four 8413, PIN 9072; the demo backend
   knows other numbers, so the check runs and fails, and the caller is queued for an agent). Those digit strings
   must appear nowhere: not in any server log line, not in the call record, not in the agent context. The call
   record lists the recording pauses, and the stereo WAV is digital silence in both channels for those spans
   while the caller's hum is there just before.
2. `voicebot serve` is SIGKILLed 6 s into a recorded call: the WAV still opens and holds all but the last
   second, with the caller's tone in the left channel.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.integration.support import (
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

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

RATE = 8000
FRAME = RATE // 50  # 20 ms
ID_LAST4 = "8413"
PIN = "9072"
SPOKEN = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
          "8": "eight", "9": "nine"}
ALICE = "+15550100"  # a known demo-backend customer (her real ID last four and PIN are different)


# ------------------------------------------------------------------------------------------- pure checks


def digit_leak_pattern(digits: str) -> re.Pattern[str]:
    """The digit string as a number of its own — contiguous or spaced/dashed, or spelled out — but not inside a
    longer number, a port, a timestamp or a decimal fraction."""
    keyed = r"[\s,.-]?".join(digits)
    spoken = r"[\s,-]+".join(SPOKEN[d] for d in digits)
    return re.compile(rf"(?<![0-9.]){keyed}(?![0-9]|\.[0-9])|\b{spoken}\b", re.IGNORECASE)


def leaks(text: str, *digit_strings: str) -> list[str]:
    """Every place in ``text`` where one of ``digit_strings`` shows, with a little context."""
    found = []
    for digits in digit_strings:
        for match in digit_leak_pattern(digits).finditer(text):
            found.append(text[max(0, match.start() - 60):match.end() + 60])
    return found


def test_leak_pattern_finds_digits_but_not_numbers_that_merely_contain_them() -> None:
    assert leaks('{"id_last4": "8413"}', "8413")
    assert leaks("keyed 8 4 1 3 then", "8413")
    assert leaks("my PIN is nine zero seven two", "9072")
    assert not leaks('"port": 38413, "ts": "2026-11-25T08:41:30.413Z", "x": 0.8413, 84130', "8413")


def frame_rms(channel: np.ndarray) -> np.ndarray:
    n = len(channel) // FRAME
    frames = channel[: n * FRAME].astype(np.float64).reshape(n, FRAME)
    return np.sqrt((frames ** 2).mean(axis=1))


def tone_dominant_seconds(audio: np.ndarray, hz: float, rate: int = RATE) -> float:
    """Seconds of 20 ms frames that are loud and mostly (> 60 % of the energy) at ``hz`` (Goertzel)."""
    frame = rate // 50
    n = len(audio) // frame
    frames = audio[: n * frame].astype(np.float64).reshape(n, frame)
    t = np.arange(frame) / rate
    tone = 2 * ((frames @ np.cos(2 * np.pi * hz * t)) ** 2 + (frames @ np.sin(2 * np.pi * hz * t)) ** 2) / frame
    total = (frames ** 2).sum(axis=1) + 1e-9
    loud = total / frame > 300 ** 2
    return float(np.count_nonzero(loud & (tone / total > 0.6))) * frame / rate


# ------------------------------------------------------------------------------------------- helpers


def api(port: int, method: str, path: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def write_hum(path: Path, seconds: float = 10.0) -> None:
    """A quiet 50 Hz hum, A-law: real energy in the recording, but below what the speech detector calls speech."""
    t = np.arange(int(seconds * RATE)) / RATE
    soundfile.write(str(path), (300 * np.sin(2 * np.pi * 50 * t)).astype(np.int16), RATE, subtype="ALAW")


def call_record(server: ServerProcess, call_id: str, timeout: float = 30.0) -> dict:
    return server.wait_for_match("call ended", timeout=timeout, call_id=call_id)


# ------------------------------------------------------------------------------------------- the tests


@dataclass(frozen=True)
class FinanceCall:
    """What one finance call left behind: every server log line, the call record, the agent context."""

    lines: list[str]
    record: dict
    context: dict


@pytest.fixture(scope="module")
def finance_call(tmp_path_factory: pytest.TempPathFactory) -> FinanceCall:
    """One bank customer keys ID last four and PIN, is refused by the backend and waits for an agent, then hangs up."""
    require_tool("sipp")
    tmp_path = tmp_path_factory.mktemp("finance")
    (tmp_path / "agents.yaml").write_text(f"""agents:
  - id: b1
    name: Banking Desk
    sip_uri: sip:b1@127.0.0.1:{free_udp_port()}
    skills: {{banking: 5, loan_extension: 5, elderly_care: 5}}
    languages: [en-US, zh-CN]
""")
    (tmp_path / "queues.yaml").write_text("queues:\n  - name: banking\n    max_wait_s: 600\n"
                                          "  - name: loans\n    max_wait_s: 600\n")
    tokens = TokenStore.load(tmp_path / "tokens.json")
    admin = tokens.create("admin")
    tokens.save()
    server = start_server(tmp_path, f"""speech: {{workers: 1, asr_model: tiny.en}}
codecs: {{preference: [PCMA, PCMU]}}
queues: {{agents_file: {tmp_path / 'agents.yaml'}, queues_file: {tmp_path / 'queues.yaml'}}}
""", dialplan="finance")
    sipp_dir = tmp_path / "caller"
    sipp_dir.mkdir()
    write_hum(sipp_dir / "hum.wav")
    keys = [f"-key id{i + 1} {d}" for i, d in enumerate(ID_LAST4)] + [f"-key pin{i + 1} {d}" for i, d in enumerate(PIN)]
    caller = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIOS / "finance_keys_id_and_pin.xml"), "-i", "127.0.0.1", "-p",
         str(free_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-key", "ani", ALICE,
         *" ".join(keys).split(), "-d", "12000", "-m", "1", "-nostdin", "-timeout", "90s", "-timeout_error",
         "-trace_err", "-error_file", str(sipp_dir / "errors.log"), f"127.0.0.1:{server.port}"],
        cwd=sipp_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        api_port = int(server.wait_for("api listening")[0]["port"])
        queued = server.wait_for("caller queued", timeout=60)[0]
        call_id = queued["call_id"]
        assert queued["queue"] == "banking"
        status, context = api(api_port, "GET", f"/calls/{call_id}/context", admin)
        assert status == 200, context
        _, stderr = caller.communicate(timeout=60)
        assert caller.returncode == 0, stderr[-2000:] + (sipp_dir / "errors.log").read_text(errors="ignore")
        record = call_record(server, call_id)
    finally:
        if caller.poll() is None:
            caller.kill()
        stop_server(server)
    return FinanceCall(list(server.lines), record, context)


@pytest.mark.timeout(150)
def test_finance_verification_by_keypad_leaks_no_digits_and_pauses_the_recording(finance_call: FinanceCall) -> None:
    record, context = finance_call.record, finance_call.context

    # The check really ran on the keyed digits: the backend refused them and the caller went to an agent.
    bot_said = " ".join(t.get("text", "") for t in record["transcript"] if t.get("who") == "bot")
    assert "could not verify your identity" in bot_said, record["transcript"]
    keyed = [t["text"] for t in record["transcript"] if t.get("who") == "caller" and t.get("kind") == "dtmf"]
    assert "****" in keyed, keyed  # the sensitive entries are there, masked
    assert context["verified"] is not True
    # ...and the digits are nowhere: every server log line, the call record, the agent context.
    assert leaks("\n".join(finance_call.lines), ID_LAST4, PIN) == []
    assert leaks(json.dumps(record), ID_LAST4, PIN) == []
    assert leaks(json.dumps(context), ID_LAST4, PIN) == []

    # The recording was paused while the digits were keyed, and the pause is digital silence on both sides.
    pauses = record["recording"]["pauses"]
    assert pauses, record["recording"]
    audio, rate = soundfile.read(record["recording"]["path"], dtype="int16", always_2d=True)
    assert (audio.shape[1], rate) == (2, RATE)
    caller_rms = frame_rms(audio[:, 0])
    total_paused = 0.0
    for pause in pauses:
        start, end = pause["from_s"], pause.get("to_s", len(audio) / RATE)
        assert end > start, pauses
        total_paused += end - start
        span = audio[int(start * RATE):int(end * RATE)]
        assert not span.any(), f"recording not silent in pause {pause}"
        before = caller_rms[max(0, int(start * 50) - 50):int(start * 50)]  # the second before the pause
        assert before.size and np.median(before) > 50, "no caller hum before the pause: silence proves nothing"
    assert total_paused >= 5.0, pauses  # eight digits and two prompts were keyed through, not a blip


def test_agent_context_does_not_show_the_callers_number_unmasked(finance_call: FinanceCall) -> None:
    assert finance_call.context["caller"] != ALICE  # masked at the top level...
    assert ALICE.lstrip("+") not in json.dumps(finance_call.context)  # ...and everywhere else


@pytest.mark.timeout(120)
def test_recording_survives_kill_9_mid_call_up_to_the_last_second(tmp_path: Path) -> None:
    tone_hz = 1000.0
    t = np.arange(40 * RATE) / RATE
    caller_wav = tmp_path / "tone.wav"
    soundfile.write(str(caller_wav), (5000 * np.sin(2 * np.pi * tone_hz * t)).astype(np.int16), RATE)
    server = start_server(tmp_path)  # keypad demo (recording.enabled is on): greeting, then waits for digits
    recordings = tmp_path / "recordings"
    # A key at 5 s restarts the demo's digit timer, so the call is still going when the server is killed at 6 s.
    caller = subprocess.Popen([sys.executable, "-m", "voicebot.cli", "call", server.uri, "--play", str(caller_wav),
                               "--dtmf", "1", "--dtmf-delay", "5", "--duration", "30", "--timeout", "40", "--json"],
                              cwd=REPO,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not list(recordings.glob("*.wav")):  # the recorder opens its file when the call is answered
            assert time.monotonic() < deadline, "no recording started:\n" + "\n".join(server.lines[-20:])
            assert server.proc.poll() is None
            time.sleep(0.02)
        started = time.monotonic()
        time.sleep(6.0)
        server.proc.send_signal(signal.SIGKILL)
        elapsed = time.monotonic() - started
        assert server.proc.wait(10) == -signal.SIGKILL
        assert server.records("call ended") == []  # it really died mid-call
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait(10)
        stop_server(server)

    wav = max(recordings.glob("*.wav"), key=lambda p: p.stat().st_mtime)
    audio, rate = soundfile.read(str(wav), dtype="int16", always_2d=True)
    assert (audio.shape[1], rate) == (2, RATE)
    duration = len(audio) / rate
    assert duration >= elapsed - 1.0, (duration, elapsed)
    left = audio[:, 0]
    # The caller's tone fills the left channel from the first RTP packet up to the end of the file.
    assert tone_dominant_seconds(left, tone_hz) >= duration - 1.5, (tone_dominant_seconds(left, tone_hz), duration)
    assert tone_dominant_seconds(left[-rate:], tone_hz) >= 0.6  # the key at 5 s replaces ~0.2 s of audio
