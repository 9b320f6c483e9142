"""Real SIP traffic from sipp (an independent implementation) against a running `voicebot serve`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.integration.support import SCENARIOS, ServerProcess, free_media_port, free_udp_port, run_sipp

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def voiced_seconds(path: Path, threshold: float = 300.0, channel: int = 0) -> float:
    """Seconds of 20 ms frames whose RMS exceeds ``threshold`` (speech, not silence or comfort noise).

    Call recordings are stereo: channel 0 is the caller, channel 1 what voicebot sent.
    """
    audio, rate = soundfile.read(str(path), dtype="int16")
    if audio.ndim > 1:
        audio = audio[:, channel]
    frame = rate // 50
    n = len(audio) // frame
    if n == 0:
        return 0.0
    frames = audio[: n * frame].astype(np.float64).reshape(n, frame)
    return float(np.sum(np.sqrt(np.mean(frames**2, axis=1)) > threshold)) * 0.02


def sipp_args(server: ServerProcess, scenario: str, *extra: str) -> list[str]:
    return [f"{server.host}:{server.port}", "-sf", str(SCENARIOS / scenario), "-m", "1", "-i", "127.0.0.1",
            "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_media_port()), *extra]


def test_pcap_speech_and_rfc4733_dtmf_arrive(voicebot_server: ServerProcess, tmp_path: Path) -> None:
    result = run_sipp(sipp_args(voicebot_server, "dtmf_rfc4733.xml"), tmp_path)
    assert result.returncode == 0, result.stderr
    ended = voicebot_server.wait_for("call ended")[0]
    assert ended["digits"] == "123"
    assert ended["outcome"] == "completed"
    assert ended["rtp_received"] > 200
    recording = voicebot_server.recordings()[0]
    # g711a.pcap carries about 4.7 s of speech; most of it must arrive as voiced audio.
    assert voiced_seconds(recording) > 2.0


def test_sip_info_dtmf_arrives(voicebot_server: ServerProcess, tmp_path: Path) -> None:
    result = run_sipp(sipp_args(voicebot_server, "dtmf_info.xml"), tmp_path)
    assert result.returncode == 0, result.stderr
    ended = voicebot_server.wait_for("call ended")[0]
    assert ended["digits"] == "45"
    assert ended["outcome"] == "completed"


def test_prompt_audio_reaches_the_caller(voicebot_server: ServerProcess, tmp_path: Path) -> None:
    # sipp echoes every RTP packet it receives; what voicebot records from the caller is its own prompt.
    result = run_sipp(sipp_args(voicebot_server, "echo_prompt.xml", "-rtp_echo"), tmp_path)
    assert result.returncode == 0, result.stderr
    ended = voicebot_server.wait_for("call ended")[0]
    assert ended["end_reason"] == "remote hangup"
    assert ended["rtp_sent"] > 150
    assert voiced_seconds(voicebot_server.recordings()[0]) > 1.5


def _sipp_uas_target(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    port = free_udp_port()
    proc = subprocess.Popen(["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1",
                             "-mp", str(free_media_port()), "-m", "1", "-nostdin", "-timeout", "40s",
                             "-timeout_error"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return proc, port


def test_refer_to_allowed_target_is_followed(voicebot_server: ServerProcess, tmp_path: Path) -> None:
    target_proc, target_port = _sipp_uas_target(tmp_path)
    inf = tmp_path / "target.csv"
    inf.write_text(f"SEQUENTIAL\nsip:agent@127.0.0.1:{target_port};\n")
    try:
        result = run_sipp(sipp_args(voicebot_server, "refer_accepted.xml", "-inf", str(inf)), tmp_path)
        assert result.returncode == 0, result.stderr
        # The referred leg reached the target, which answered: voicebot ran a session on it and hung up.
        assert target_proc.wait(30) == 0
    finally:
        if target_proc.poll() is None:
            target_proc.kill()
    logs = voicebot_server.records("REFER accepted")
    target = f"sip:agent@127.0.0.1:{target_port}"
    assert logs and logs[0]["target"] == target
    referring = logs[0]["call_id"]
    # The referred leg opens and closes a call record of its own, linked to the referring call's.
    calls = _closed_calls(voicebot_server.workdir / "records" / "calls.sqlite3", 2)
    assert set(calls) >= {referring} and len(calls) == 2, calls
    leg = next(call_id for call_id in calls if call_id != referring)
    assert calls[leg]["callee"] == "agent" and calls[leg]["dialplan"] == "keypad-demo", calls[leg]
    kinds = [kind for kind, _ in calls[leg]["events"]]
    assert kinds[0] == "call_started" and kinds[-1] == "call_ended", kinds
    assert ("referred", {"event": "referred", "referred_from": referring, "target": target}) in calls[leg]["events"]
    assert ("refer_accepted", {"event": "refer_accepted", "target": target}) in calls[referring]["events"]


def _closed_calls(db: Path, count: int, timeout: float = 30.0) -> dict[str, dict]:
    """The call records in ``db`` once ``count`` of them are closed (written by the server's record thread)."""
    deadline = time.monotonic() + timeout
    while True:
        if db.exists():
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as reader:
                rows = reader.execute("SELECT call_id, callee, dialplan, ended_at FROM calls").fetchall()
                events = reader.execute("SELECT call_id, kind, data FROM call_events ORDER BY call_id, seq").fetchall()
            if sum(1 for row in rows if row[3] is not None) >= count:
                return {call_id: {"callee": callee, "dialplan": dialplan,
                                  "events": [(kind, json.loads(data)) for cid, kind, data in events if cid == call_id]}
                        for call_id, callee, dialplan, _ in rows}
        assert time.monotonic() < deadline, f"fewer than {count} closed call records in {db}"
        time.sleep(0.1)


def test_refer_to_unlisted_target_is_refused(voicebot_server: ServerProcess, tmp_path: Path) -> None:
    inf = tmp_path / "target.csv"
    inf.write_text("SEQUENTIAL\nsip:+19005550100@198.51.100.7;\n")  # a premium-rate number: toll fraud attempt
    result = run_sipp(sipp_args(voicebot_server, "refer_refused.xml", "-inf", str(inf)), tmp_path)
    assert result.returncode == 0, result.stderr
    refused = voicebot_server.records("REFER refused: target not allowed")
    assert refused and "198.51.100.7" in refused[0]["target"]
