"""`voicebot hear`: a recording through the phone line, as a node of a dialplan would hear it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HUMAN = REPO / "tests" / "audio_fixtures" / "human"
PLAN = """
dialplan: phone
languages: [zh-CN]
start: number
nodes:
  number:
    ask: {slot: phone, type: digits, length: 8, say: "请说出号码。"}
    goto: bye
  bye: {say: "再见。", hangup: done}
"""


def hear(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "voicebot.cli", "hear", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=env, stdin=subprocess.DEVNULL, check=False)


def test_hear_a_mandarin_number_at_a_digits_node(tmp_path: Path) -> None:
    plan = tmp_path / "phone.yaml"
    plan.write_text(PLAN)
    proc = hear(str(HUMAN / "BAC009S0252W0088.flac"), "--lang", "zh", "--dialplan", str(plan), "--node", "number",
                "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["language"] == "zh"
    assert report["grammar"]["kind"] == "digits" and report["grammar"]["max_digits"] == 8
    assert report["grammar_used"] is True
    assert report["slot"] == "phone" and report["slot_value"] == "77159384" and report["outcome"] == "filled"


def test_hear_rejects_bad_input_clearly(tmp_path: Path) -> None:
    missing = hear(str(tmp_path / "nope.wav"))
    assert missing.returncode == 2 and "no such audio file" in missing.stderr
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio")
    garbage = hear(str(not_audio))
    assert garbage.returncode == 2 and "cannot read" in garbage.stderr
    orphan = hear(str(HUMAN / "1_george_3.flac"), "--node", "number")
    assert orphan.returncode == 2 and "--node needs --dialplan" in orphan.stderr
