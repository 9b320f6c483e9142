"""A person reads an account number digit by digit over real SIP into an ask of type digits (issue 13).

The PJSIP softphone (`voicebot call`) plays one FSDD speaker's digits, joined with pauses, into a one-node dialplan;
the slot must hold exactly those digits, heard through the digits grammar (the caller's transcript entry says so).
The speaker pauses up to ~1.2 s between digits: longer than the ask's 800 ms end silence, so the turn also tests that
a digits grammar holds the turn open (conversation.DIGITS_END_SILENCE_MS).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.integration.support import (
    REPO,
    ServerProcess,
    launch_server,
    stop_server,
    write_config,
)
from voicebot.speech.phoneline import join_with_pauses

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

HUMAN = REPO / "tests" / "audio_fixtures" / "human"
DIALPLAN = """
dialplan: account
languages: [en-US]
start: account
nodes:
  account:
    ask: {slot: account, type: digits, length: 6, say: "Please say your six digit account number.", max_attempts: 1}
    goto: thanks
  thanks: {say: "Thank you.", hangup: done}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("grammar-server")
    plans = workdir / "dialplans"
    plans.mkdir()
    (plans / "account.yaml").write_text(DIALPLAN)
    config = workdir / "voicebot.yaml"
    write_config(config, extra="speech: {workers: 2, asr_model: base}", dialplan="account")
    config.write_text(config.read_text().replace(f"dialplans_dir: {REPO / 'dialplans'}", f"dialplans_dir: {plans}"))
    running = launch_server(config, workdir)
    yield running
    stop_server(running)


def caller_reading(digits: str, speaker: str, tmp_path: Path, lead_s: float) -> Path:
    clips = [soundfile.read(str(HUMAN / f"{d}_{speaker}_3.flac"), dtype="int16")[0] for d in digits]
    audio = join_with_pauses(clips, 8000, random.Random(0))
    out = tmp_path / "caller.wav"
    soundfile.write(str(out), np.concatenate([np.zeros(int(8000 * lead_s), np.int16), audio]), 8000,
                    subtype="PCM_16")
    return out


def place_call(server: ServerProcess, play: Path, tmp_path: Path, duration: float) -> dict:
    before = len(server.records("call ended"))
    proc = subprocess.run([sys.executable, "-m", "voicebot.cli", "call", f"sip:account@{server.host}:{server.port}",
                           "--json", "--record", str(tmp_path / "heard.wav"), "--play", str(play),
                           "--duration", str(duration), "--timeout", str(duration + 15)],
                          cwd=REPO, capture_output=True, text=True, timeout=duration + 40, stdin=subprocess.DEVNULL,
                          check=False)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["result"] == "answered"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        records = server.records("call ended")
        if len(records) > before:
            return records[before]
        time.sleep(0.1)
    raise AssertionError("no call ended record\n" + "\n".join(server.lines[-20:]))


@pytest.mark.parametrize(("digits", "speaker"), [("164388", "george")])
def test_a_person_reads_an_account_number_into_a_digits_ask(server: ServerProcess, tmp_path: Path, digits: str,
                                                            speaker: str) -> None:
    record = place_call(server, caller_reading(digits, speaker, tmp_path, lead_s=4.0), tmp_path, duration=22)
    transcript = record["transcript"]
    print(json.dumps(transcript, ensure_ascii=False, indent=1))
    slots = [e for e in transcript if e["who"] == "event" and e["text"] == "slot"]
    assert [e.get("value") for e in slots] == [digits], transcript
    callers = [e for e in transcript if e["who"] == "caller" and e.get("text")]
    assert callers and callers[-1].get("grammar") is True, callers
