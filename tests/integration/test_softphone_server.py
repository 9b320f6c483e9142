"""`voicebot call` (PJSIP, via pjsua2) against `voicebot serve`: hear the prompt, key digits, hang up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.integration.support import REPO, ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def voiced_seconds(path: Path, threshold: float = 300.0) -> float:
    audio, rate = soundfile.read(str(path), dtype="int16")
    if audio.ndim > 1:
        audio = audio[:, 0]
    frame = rate // 50
    n = len(audio) // frame
    frames = audio[: n * frame].astype(np.float64).reshape(n, frame)
    return float(np.sum(np.sqrt(np.mean(frames**2, axis=1)) > threshold)) * 0.02


def place_call(server: ServerProcess, tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "heard.wav"
    proc = subprocess.run([sys.executable, "-m", "voicebot.cli", "call", server.uri, "--record", str(out),
                           "--timeout", "60", "--json", *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    summary["exit_code"] = proc.returncode
    summary["wav"] = out
    return summary


@pytest.mark.parametrize("mode", ["rfc4733", "info"])
def test_pjsua2_caller_hears_prompt_and_keys_digits(voicebot_server: ServerProcess, tmp_path: Path,
                                                    mode: str) -> None:
    summary = place_call(voicebot_server, tmp_path, "--dtmf", "907#", "--dtmf-mode", mode, "--dtmf-delay", "3",
                         "--duration", "30")
    assert summary["exit_code"] == 0, summary
    assert summary["result"] == "answered"
    # The greeting (about 5 s of speech) and the read-back reached PJSIP's recorder.
    assert voiced_seconds(summary["wav"]) > 2.0
    ended = voicebot_server.wait_for("call ended")[0]
    assert ended["digits"] == "907"
    assert ended["outcome"] == "completed"  # voicebot hung up after the read-back, not the softphone
