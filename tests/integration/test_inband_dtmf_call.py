"""In-band DTMF over real SIP: sipp offers PCMU without telephone-event and sends speech, then keypad tones, as
RTP audio (a pcap written here); the keypad demo must read back exactly the keyed digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.integration.rtp_pcap import write_rtp_pcap
from tests.integration.support import SCENARIOS, ServerProcess, free_media_port, free_udp_port, run_sipp
from voicebot.rtp.inband_dtmf import dtmf_tone
from voicebot.speech.resample import resample

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FIXTURES = Path(__file__).resolve().parents[1] / "audio_fixtures"


def caller_audio() -> np.ndarray:
    """A spoken digit string (it must not key anything), then 1 2 3 # as 80 ms tones with 80 ms pauses."""
    speech, rate = soundfile.read(FIXTURES / "en_account_digits.wav", dtype="int16")
    pause = np.zeros(640, dtype=np.int16)
    tones = [np.concatenate([dtmf_tone(d, 80, level_dbm0=-12), pause]) for d in "123#"]
    return np.concatenate([resample(speech, rate, 8000), np.zeros(4000, dtype=np.int16), *tones,
                           np.zeros(8000, dtype=np.int16)])


def test_inband_tones_are_read_as_digits(voicebot_server: ServerProcess, tmp_path: Path) -> None:
    write_rtp_pcap(tmp_path / "tones.pcap", caller_audio(), "PCMU", 0)
    args = [f"{voicebot_server.host}:{voicebot_server.port}", "-sf", str(SCENARIOS / "dtmf_inband.xml"), "-m", "1",
            "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_media_port())]
    result = run_sipp(args, tmp_path)
    assert result.returncode == 0, result.stderr
    ended = voicebot_server.wait_for("call ended")[0]
    assert ended["digits"] == "123"
    assert ended["outcome"] == "completed"
    assert ended["rtp_received"] > 150
