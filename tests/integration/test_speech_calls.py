"""Speech conversations over real SIP: the PJSIP softphone speaks caller fixtures to the demo dialplan.

The bot's reply, as recorded by the softphone, is recognised again with Whisper and must contain the expected
words. Barge-in and DTMF-during-prompt are measured on voicebot's own tick-aligned stereo recording
(left: caller as received, right: bot as sent).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.integration.support import REPO, ServerProcess, start_server, stop_server
from voicebot.speech.asr import WhisperAsr
from voicebot.speech.resample import resample

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FIXTURES = REPO / "tests" / "audio_fixtures"
FRAME = 160  # 20 ms at 8 kHz


@pytest.fixture(scope="module")
def speech_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("speech-server")
    server = start_server(workdir, "speech: {workers: 2, asr_model: base}", dialplan="demo")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def whisper() -> WhisperAsr:
    return WhisperAsr("base")


def caller_wav(tmp_path: Path, fixture: str, lead_s: float, tail_s: float = 0.0) -> Path:
    audio, rate = soundfile.read(str(FIXTURES / f"{fixture}.wav"), dtype="int16")
    padded = np.concatenate([np.zeros(int(rate * lead_s), np.int16), audio, np.zeros(int(rate * tail_s), np.int16)])
    out = tmp_path / f"{fixture}-{lead_s:g}.wav"
    soundfile.write(str(out), padded, rate, subtype="PCM_16")
    return out


def call(server: ServerProcess, tmp_path: Path, *args: str) -> dict:
    heard = tmp_path / "heard.wav"
    proc = subprocess.run([sys.executable, "-m", "voicebot.cli", "call", server.uri, "--record", str(heard),
                           "--json", "--timeout", "90", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["result"] == "answered", summary
    summary["heard"] = heard
    return summary


def ended_record(server: ServerProcess, before: int) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        records = server.records("call ended")
        if len(records) > before:
            return records[before]
        time.sleep(0.1)
    raise AssertionError("no call ended record\n" + "\n".join(server.lines[-20:]))


def transcribe_file(asr: WhisperAsr, path: Path, language: str | None, after_s: float = 0.0) -> str:
    """Re-recognise what the softphone heard, from `after_s` seconds on (skipping what was said before the reply)."""
    audio, rate = soundfile.read(str(path), dtype="int16")
    if audio.ndim > 1:
        audio = audio[:, 0]
    audio = audio[int(after_s * rate):]
    return asr.transcribe(resample(audio, rate, 16000), language=language).text


def fixture_seconds(fixture: str) -> float:
    return float(soundfile.info(str(FIXTURES / f"{fixture}.wav")).duration)


def frame_energy(samples: np.ndarray) -> np.ndarray:
    n = len(samples) // FRAME
    frames = samples[: n * FRAME].astype(np.float64).reshape(n, FRAME)
    return np.sqrt(np.mean(frames**2, axis=1))


def bot_texts(record: dict) -> list[str]:
    return [e["text"] for e in record["transcript"] if e["who"] == "bot"]


def test_english_caller_asks_for_balance(speech_server: ServerProcess, tmp_path: Path, whisper: WhisperAsr) -> None:
    before = len(speech_server.records("call ended"))
    wav = caller_wav(tmp_path, "en_balance", lead_s=1.0)
    summary = call(speech_server, tmp_path, "--play", str(wav), "--duration", "18")
    record = ended_record(speech_server, before)
    callers = [e for e in record["transcript"] if e["who"] == "caller"]
    assert callers and "balance" in callers[0]["text"].lower()
    assert callers[0]["intent"] == "check_balance"
    assert any("account number" in t for t in bot_texts(record))
    # Only the reply: the English greeting before it is cut off by the caller's speech (barge-in).
    heard = transcribe_file(whisper, summary["heard"], "en", after_s=1.0 + fixture_seconds("en_balance")).lower()
    assert "account number" in heard, heard


def test_a_caller_who_talks_at_once_is_heard_from_the_first_word(speech_server: ServerProcess,
                                                                 tmp_path: Path) -> None:
    """Speech from the moment of the answer (while the lookup runs and the greeting is synthesised) is the caller's
    first turn: it cuts the greeting and is recognised whole, not dropped when the listen opens."""
    before = len(speech_server.records("call ended"))
    wav = caller_wav(tmp_path, "en_balance", lead_s=0.0)  # "Hi, I would like to check my account balance please."
    call(speech_server, tmp_path, "--play", str(wav), "--duration", "14")
    record = ended_record(speech_server, before)
    callers = [e for e in record["transcript"] if e["who"] == "caller" and e.get("text")]
    assert callers and callers[0]["intent"] == "check_balance", record["transcript"]
    assert "would like" in callers[0]["text"].lower(), callers[0]  # the first words, said before any prompt
    assert any("account number" in t for t in bot_texts(record))


def test_mandarin_caller_is_answered_in_mandarin(speech_server: ServerProcess, tmp_path: Path,
                                                 whisper: WhisperAsr) -> None:
    before = len(speech_server.records("call ended"))
    wav = caller_wav(tmp_path, "zh_balance", lead_s=1.0)
    summary = call(speech_server, tmp_path, "--play", str(wav), "--duration", "18")
    record = ended_record(speech_server, before)
    callers = [e for e in record["transcript"] if e["who"] == "caller" and e.get("text")]
    # The greeting "你好，" may be endpointed as a turn of its own; the request itself must be understood.
    asked = [e for e in callers if e.get("intent") == "check_balance"]
    assert asked and asked[0]["lang"] == "zh", callers
    assert any("账号" in t for t in bot_texts(record)), record["transcript"]  # switched to zh-CN (auto_language)
    # Only the reply: Whisper told "zh" on a recording that starts with the English greeting may return just that.
    heard = transcribe_file(whisper, summary["heard"], "zh", after_s=1.0 + fixture_seconds("zh_balance"))
    print(f"heard: {heard}")
    assert any(word in heard for word in ("账号", "帐号", "帳號", "六位")), heard


def test_barge_in_stops_the_prompt_quickly(speech_server: ServerProcess, tmp_path: Path) -> None:
    before = len(speech_server.records("call ended"))
    lead = 3.5  # the greeting (two prompts, ~9 s) is playing by then
    call(speech_server, tmp_path, "--play", str(caller_wav(tmp_path, "en_agent", lead_s=lead)), "--duration", "8")
    record = ended_record(speech_server, before)
    stereo, rate = soundfile.read(record["recording"]["path"], dtype="int16")
    caller, bot = frame_energy(stereo[:, 0]), frame_energy(stereo[:, 1])
    onset = int(np.argmax(caller > 500))  # first voiced caller frame as voicebot received it
    # The greeting was in progress at the onset (a pause between its sentences may fall just before it).
    assert onset > 0 and bot[max(0, onset - 25):onset].max() > 300, "the greeting was playing at the onset"
    # Stopped = the first quiet frame from which the bot stays quiet (a pause between the greeting's sentences
    # right at the onset is not the stop).
    quiet = [i for i in range(onset, len(bot) - 25) if bot[i] < 50 and bot[i:i + 25].max() < 300]
    assert quiet, "the prompt never stopped"
    stop = quiet[0]
    latency_ms = (stop - onset) * 20
    print(f"barge-in latency: {latency_ms} ms")
    assert latency_ms <= 200  # issue goal 100 ms; the figure is printed and reported in the README
    assert bot[stop:stop + 25].max() < 300  # and it stays stopped while the caller talks


def test_dtmf_during_prompt_stops_it_and_is_handled(speech_server: ServerProcess, tmp_path: Path) -> None:
    before = len(speech_server.records("call ended"))
    call(speech_server, tmp_path, "--dtmf", "1", "--dtmf-delay", "2", "--duration", "10")
    record = ended_record(speech_server, before)
    keys = [e for e in record["transcript"] if e.get("kind") == "dtmf"]
    assert keys and keys[0]["text"] == "1"
    texts = bot_texts(record)
    assert any("account number" in t for t in texts)  # "1" = balance → identification
    stereo, _ = soundfile.read(record["recording"]["path"], dtype="int16")
    bot = frame_energy(stereo[:, 1])
    # The greeting (two prompts, ~9 s) would play on for the rest of this 10 s call. Cut by the key at ~2 s, only the
    # account-number prompt (~2.6 s) follows, then silence until its no-input reprompt (5 s after it ends). So the bot
    # must be quiet from 3.5 s to 6.5 s after the key: 3 s, far longer than any pause between the greeting's
    # sentences (300 ms).
    started = next(e["t"] for e in record["transcript"] if e["text"] == "call_started")  # ~ the recording's start
    key_s = keys[0]["t"] - started
    window = bot[int((key_s + 3.5) * 50):int((key_s + 6.5) * 50)]  # 50 frames of 20 ms a second
    assert len(window) * 20 >= 2500, f"recording too short for the check ({len(bot) * 20} ms, key at {key_s:.2f} s)"
    voiced_ms = int((window > 300).sum()) * 20
    assert voiced_ms == 0, (f"the bot still talked {voiced_ms} ms in the {len(window) * 20} ms from 3.5 s after "
                            "the key press: the prompt kept playing")


def test_crashed_speech_workers_are_replaced_and_the_call_goes_on(speech_server: ServerProcess,
                                                                   tmp_path: Path) -> None:
    workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(speech_server.proc.pid)],
                                              capture_output=True, text=True).stdout.split()]
    workers = [p for p in workers if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="ignore")]
    assert workers, "no speech worker processes found"
    before = len(speech_server.records("call ended"))
    wav = caller_wav(tmp_path, "en_balance", lead_s=1.0)

    def kill_workers() -> None:
        time.sleep(2.5)  # while the caller is still talking
        for pid in workers:
            os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_workers)
    killer.start()
    call(speech_server, tmp_path, "--play", str(wav), "--dtmf", "1", "--dtmf-delay", "20", "--duration", "28")
    killer.join()
    record = ended_record(speech_server, before)
    assert speech_server.records("speech worker died; starting a replacement")
    # The call was not dropped: after the crash the caller's turn got an answer, and keys still work.
    assert record["end_reason"] == "remote hangup"
    assert len(bot_texts(record)) >= 2
    keys = [e for e in record["transcript"] if e.get("kind") == "dtmf"]
    assert keys, record["transcript"]
