"""A real softphone (Debian baresip, headless, loopback only) calls `voicebot serve` and enters an account number."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.integration.baresip_support import (
    BaresipConfig,
    BaresipProcess,
    free_baresip_ports,
    parse_sip_trace,
    start_baresip,
    stop_baresip,
    voiced_seconds,
)
from tests.integration.support import ServerProcess
from voicebot.calls.recording import recording_call_id

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

CALLER_RATE = 8000
CALLER_SECONDS = 30  # aufile ends the call when its file runs out: outlast the whole dialogue.


def write_caller_wav(path: Path) -> None:
    """A 30 s 8 kHz mono caller signal: 440 Hz bursts, 0.5 s on / 0.5 s off, at about -12 dBFS."""
    t = np.arange(CALLER_RATE * CALLER_SECONDS) / CALLER_RATE
    tone = 8000.0 * np.sin(2 * np.pi * 440.0 * t) * ((t % 1.0) < 0.5)
    soundfile.write(str(path), tone.astype(np.int16), CALLER_RATE, subtype="PCM_16")


@pytest.fixture
def baresip(tmp_path: Path) -> Iterator[BaresipProcess]:
    if shutil.which("baresip") is None:
        pytest.fail("baresip is not installed: run scripts/setup.sh (it installs the apt packages)")
    caller_wav = tmp_path / "caller.wav"
    write_caller_wav(caller_wav)
    sip_port, ctrl_port = free_baresip_ports()
    config = BaresipConfig(config_dir=tmp_path / "baresip", sip_port=sip_port, ctrl_port=ctrl_port,
                           source_wav=caller_wav, dump_dir=tmp_path / "baresip-audio")
    process = start_baresip(config)
    yield process
    stop_baresip(process)


def test_baresip_call_enters_digits_and_is_hung_up_by_server(voicebot_server: ServerProcess,
                                                             baresip: BaresipProcess) -> None:
    dial = baresip.command("dial", voicebot_server.uri)
    assert dial.get("ok"), dial

    established = baresip.wait_event("CALL_ESTABLISHED", timeout=15)
    assert established["peeruri"] == voicebot_server.uri
    baresip.wait_heard(1.0, timeout=15)  # a second of the greeting heard before keying in
    baresip.send_digits("12#")

    closed = baresip.wait_event("CALL_CLOSED", timeout=40)
    assert closed["id"] == established["id"]
    assert closed["param"] == "Connection reset by peer", closed  # remote BYE, not a local hangup or error

    ended = voicebot_server.wait_for("call ended", timeout=10)[0]
    assert ended["digits"] == "12"
    assert ended["outcome"] == "completed"
    assert ended["rtp_received"] > 100
    assert ended["rtp_sent"] > 100

    server_addr = f"{voicebot_server.host}:{voicebot_server.port}"
    trace = parse_sip_trace(baresip.log())
    invite_answers = [m.start_line for m in trace if m.source == server_addr and m.start_line.startswith("SIP/2.0 ")]
    assert "SIP/2.0 200 OK" in invite_answers, trace
    byes_from_server = [m for m in trace if m.source == server_addr and m.start_line.startswith("BYE ")]
    assert len(byes_from_server) == 1, trace
    assert not any(m.destination == server_addr and m.start_line.startswith("BYE ") for m in trace), trace
    bye_index = trace.index(byes_from_server[0])
    assert any(m.destination == server_addr and m.start_line == "SIP/2.0 200 OK" for m in trace[bye_index:]), trace

    # What baresip heard (decoded far-end audio): the spoken greeting and read-back, not silence.
    dumps = baresip.decoded_dumps()
    assert len(dumps) == 1, dumps
    heard, heard_rate = soundfile.read(str(dumps[0]), dtype="int16")
    assert heard_rate == CALLER_RATE
    assert voiced_seconds(heard, heard_rate) > 1.0

    # What voicebot recorded from the caller: baresip's tone bursts (about half of the call is tone).
    recordings = voicebot_server.recordings()
    assert len(recordings) == 1, recordings
    assert recording_call_id(recordings[0]) == established["id"]  # named <call-id>.<server id>.wav, tagged
    assert recordings[0].name.startswith(f"{established['id']}.")
    stereo, caller_rate = soundfile.read(str(recordings[0]), dtype="int16")
    assert stereo.ndim == 2  # left: caller, right: what voicebot sent
    assert voiced_seconds(stereo[:, 0], caller_rate) > 1.0
    assert voiced_seconds(stereo[:, 1], caller_rate) > 1.0
