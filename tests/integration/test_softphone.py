"""The pjsua2 test softphone (`python -m voicebot.softphone`) against sipp UAS scenarios on loopback."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from voicebot.softphone.args import UsageError, parse_header, uri_transport
from voicebot.softphone.audio import resample_linear, to_mono
from voicebot.softphone.summary import CallSummary, classify_result

from tests.integration.support import free_media_port, free_udp_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (Debian sip-tester) is not installed"),
]

G711A_PCAP = Path("/usr/share/sip-tester/g711a.pcap")
REPO_ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------------
# Helpers and fixtures
# ------------------------------------------------------------------------------------------------


@dataclass
class Sipp:
    """A sipp UAS running in the foreground for exactly one call."""

    process: subprocess.Popen[str]
    port: int

    @property
    def uri(self) -> str:
        return f"sip:service@127.0.0.1:{self.port}"

    def wait(self, timeout: float = 20.0) -> tuple[int, str]:
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
            return -1, out
        return self.process.returncode, out


@pytest.fixture
def start_sipp(tmp_path: Path):
    """Start sipp as a UAS with a built-in (`-sn NAME`) or XML scenario; killed at teardown."""
    started: list[Sipp] = []

    def start(scenario: str, *extra: str) -> Sipp:
        port = free_udp_port()
        scenario_args = ["-sn", scenario] if not scenario.endswith(".xml") else ["-sf", scenario]
        cmd = ["sipp", *scenario_args, "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_media_port()),
               "-m", "1", "-timeout", "30s", "-timeout_error", "-nostdin", *extra]
        process = subprocess.Popen(cmd, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        sipp = Sipp(process, port)
        started.append(sipp)
        return sipp

    yield start
    for sipp in started:
        if sipp.process.poll() is None:
            sipp.process.kill()
            sipp.process.communicate()


@dataclass
class SoftphoneRun:
    returncode: int
    summary: dict[str, Any]
    stderr: str


def run_softphone(*args: str, timeout: float = 40.0) -> SoftphoneRun:
    """Run `python -m voicebot.softphone ARGS --json`; parse the JSON summary from stdout."""
    completed = subprocess.run(
        [sys.executable, "-m", "voicebot.softphone", *args, "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    lines = [line for line in completed.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line on stdout, got {completed.stdout!r}\n{completed.stderr}"
    return SoftphoneRun(completed.returncode, json.loads(lines[0]), completed.stderr)


def write_scenario(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.xml"
    path.write_text(textwrap.dedent(body).lstrip())
    return str(path)


def write_tone(path: Path, *, frequency: float, seconds: float, rate: int, channels: int) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * frequency * t)
    sf.write(str(path), np.stack([tone] * channels, axis=1), rate)
    return path


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / samples.size)


DIALOG_CAPTURE = """
      <ereg regexp="sip:[^ ;&gt;]*" search_in="hdr" header="From:" check_it="true" assign_to="caller"/>
      <ereg regexp="tag=[^ ;]*" search_in="hdr" header="From:" check_it="true" assign_to="caller_tag"/>
      <ereg regexp="sip:[^ ;&gt;]*" search_in="hdr" header="To:" check_it="true" assign_to="callee"/>
      <ereg regexp="sip:[^&gt;]*" search_in="hdr" header="Contact:" check_it="true" assign_to="contact"/>
"""


def recv_invite(*, remember_dialog: bool, extra_actions: str = "") -> str:
    """Receive the softphone's INVITE; keep its telephone-event payload type, and the dialog for a BYE.

    sipp rejects a variable that is assigned but never used, so dialog fields are only captured when the
    scenario sends its own BYE, and the whole-match variable of the payload-type regexp is logged.
    """
    return f"""
  <recv request="INVITE">
    <action>
      {DIALOG_CAPTURE if remember_dialog else ""}
      <ereg regexp="rtpmap:([0-9]+) telephone-event/8000" search_in="body" check_it="true"
            assign_to="te_line,te_pt"/>
      <log message="caller offers [$te_line]"/>
      {extra_actions}
    </action>
  </recv>
"""


ANSWER_200_WITH_SDP = """
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 [$te_pt]
      a=rtpmap:8 PCMA/8000
      a=rtpmap:[$te_pt] telephone-event/8000
      a=fmtp:[$te_pt] 0-15
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
"""
"""Answer with PCMA and the caller's telephone-event payload type."""

REPLY_200 = """
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
"""

AWAIT_BYE = f"""
  <recv request="BYE"/>
  {REPLY_200}
"""

SEND_BYE = """
  <send>
    <![CDATA[
      BYE [$contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <[$callee]>;tag=[pid]SIPpTag01[call_number]
      To: <[$caller]>;[$caller_tag]
      [last_Call-ID:]
      CSeq: 2 BYE
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
"""


def answering_scenario(tmp_path: Path, name: str, after_answer: str = "", ending: str = AWAIT_BYE, *,
                       before: str = "", invite_actions: str = "", before_answer: str = "") -> str:
    """Write a UAS scenario: `before`, receive the INVITE (checked by `invite_actions`), `before_answer`,
    answer it, run `after_answer`, then `ending` (default: await BYE); label "end" closes it."""
    return write_scenario(tmp_path, name, f"""
        <?xml version="1.0" encoding="ISO-8859-1" ?>
        <scenario name="{name}">
        {before}
        {recv_invite(remember_dialog=ending == SEND_BYE, extra_actions=invite_actions)}
        {before_answer}
        {ANSWER_200_WITH_SDP}
        {after_answer}
        {ending}
        <label id="end"/>
        </scenario>
    """)


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_answered_call_ends_with_bye_after_duration(start_sipp) -> None:
    sipp = start_sipp("uas")

    run = run_softphone(sipp.uri, "--duration", "1.5", "--header", "X-Test-Case: duration")

    assert run.returncode == 0, run.stderr
    assert run.summary["result"] == "answered"
    assert run.summary["status_code"] == 200
    assert run.summary["hangup"] == "local"
    assert 1.3 <= run.summary["duration"] <= 4.0
    sipp_rc, sipp_out = sipp.wait()
    assert sipp_rc == 0, sipp_out  # sipp's uas scenario passes only when it received our BYE


@pytest.mark.timeout(60)
def test_busy_here_is_reported_as_rejected(start_sipp, tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path, "busy", """
        <?xml version="1.0" encoding="ISO-8859-1" ?>
        <scenario name="reply 486">
          <recv request="INVITE"/>
          <send>
            <![CDATA[
              SIP/2.0 486 Busy Here
              [last_Via:]
              [last_From:]
              [last_To:];tag=[pid]SIPpTag01[call_number]
              [last_Call-ID:]
              [last_CSeq:]
              Content-Length: 0
            ]]>
          </send>
          <recv request="ACK"/>
        </scenario>
    """)
    sipp = start_sipp(scenario)

    run = run_softphone(sipp.uri, "--duration", "5")

    assert run.returncode != 0
    assert run.summary["result"] == "rejected"
    assert run.summary["status_code"] == 486
    assert run.summary["reason"] == "Busy Here"
    assert run.summary["duration"] == 0.0
    assert "rejected" in run.stderr
    sipp_rc, sipp_out = sipp.wait()
    assert sipp_rc == 0, sipp_out


@pytest.mark.timeout(60)
def test_remote_bye_ends_the_call(start_sipp, tmp_path: Path) -> None:
    scenario = answering_scenario(tmp_path, "remote_bye", '<pause milliseconds="1000"/>', ending=SEND_BYE)
    sipp = start_sipp(scenario)

    run = run_softphone(sipp.uri, "--timeout", "20", "--verbose")

    assert run.returncode == 0, run.stderr
    assert "INVITE sip:service@127.0.0.1" in run.stderr  # --verbose shows SIP traffic, on stderr only
    assert run.summary["result"] == "answered"
    assert run.summary["hangup"] == "remote"
    assert 0.8 <= run.summary["duration"] <= 5.0
    sipp_rc, sipp_out = sipp.wait()
    assert sipp_rc == 0, sipp_out


@pytest.mark.timeout(60)
def test_played_tone_comes_back_through_rtp_echo_into_the_recording(start_sipp, tmp_path: Path) -> None:
    """44.1 kHz stereo input is converted, sent as G.711, echoed by sipp, and recorded."""
    sipp = start_sipp(answering_scenario(tmp_path, "echo"), "-rtp_echo")
    tone = write_tone(tmp_path / "tone.wav", frequency=440.0, seconds=3.0, rate=44100, channels=2)
    recording = tmp_path / "heard.wav"

    run = run_softphone(sipp.uri, "--duration", "2", "--play", str(tone), "--record", str(recording))

    assert run.returncode == 0, run.stderr
    samples, rate = sf.read(str(recording))
    assert run.summary["recorded_seconds"] == pytest.approx(samples.size / rate, abs=0.01)
    assert run.summary["recorded_seconds"] >= 1.5
    assert run.summary["recording_rms"] > 0.1
    assert dominant_frequency(samples, rate) == pytest.approx(440.0, abs=5.0)
    sipp_rc, sipp_out = sipp.wait()
    assert sipp_rc == 0, sipp_out


@pytest.mark.timeout(60)
@pytest.mark.skipif(not G711A_PCAP.exists(), reason="sipp's bundled g711a.pcap is missing")
def test_recording_captures_pcap_speech_played_by_sipp(start_sipp, tmp_path: Path) -> None:
    play_pcap = f'<nop><action><exec play_pcap_audio="{G711A_PCAP}"/></action></nop>'
    sipp = start_sipp(answering_scenario(tmp_path, "pcap", play_pcap))
    recording = tmp_path / "speech.wav"

    run = run_softphone(sipp.uri, "--duration", "3", "--record", str(recording))

    assert run.returncode == 0, run.stderr
    assert run.summary["recorded_seconds"] >= 2.5
    # A call with no incoming audio records digital silence (rms 0.0); speech from the pcap is far louder.
    assert run.summary["recording_rms"] > 0.01
    samples, rate = sf.read(str(recording))
    frame = rate // 50
    frames = samples[: samples.size // frame * frame].reshape(-1, frame)
    voiced = np.sqrt(np.mean(frames**2, axis=1)) > 0.01
    assert voiced.mean() > 0.3  # speech energy over a good share of the call, not a single click
    sipp_rc, sipp_out = sipp.wait()
    assert sipp_rc == 0, sipp_out


@pytest.mark.timeout(60)
def test_silent_call_records_silence(start_sipp, tmp_path: Path) -> None:
    sipp = start_sipp(answering_scenario(tmp_path, "silent"))  # sends no RTP
    recording = tmp_path / "silence.wav"

    run = run_softphone(sipp.uri, "--duration", "1", "--record", str(recording))

    assert run.returncode == 0, run.stderr
    assert run.summary["recorded_seconds"] >= 0.8
    assert run.summary["recording_rms"] < 0.001
    sipp_rc, sipp_out = sipp.wait()
    assert sipp_rc == 0, sipp_out


@pytest.mark.timeout(60)
def test_dtmf_info_sends_dtmf_relay_and_hangs_up_after_digits(start_sipp, tmp_path: Path) -> None:
    def expect_info(signal: str) -> str:
        return f"""
          <recv request="INFO">
            <action>
              <ereg regexp="application/dtmf-relay" search_in="hdr" header="Content-Type:"
                    check_it="true" assign_to="ct"/>
              <ereg regexp="Signal=[{signal}]" search_in="body" check_it="true" assign_to="sig"/>
            </action>
          </recv>
          {REPLY_200}
        """

    sipp = start_sipp(answering_scenario(tmp_path, "info", expect_info("4") + expect_info("#")))

    run = run_softphone(sipp.uri, "--dtmf", "4#", "--dtmf-mode", "info", "--dtmf-delay", "0.3",
                        "--hangup-after-dtmf", "0.5", "--timeout", "20")

    assert run.returncode == 0, run.stderr
    assert run.summary["digits_sent"] == "4#"
    assert run.summary["hangup"] == "local"
    assert run.summary["duration"] < 5.0
    sipp_rc, sipp_out = sipp.wait()
    assert sipp_rc == 0, sipp_out  # fails if an INFO lacked dtmf-relay or carried the wrong digit


@pytest.mark.timeout(60)
def test_rfc4733_digits_are_sent_and_detected_when_echoed(start_sipp, tmp_path: Path) -> None:
    """sipp echoes our RTP, telephone-events included, so the digits we send come back to our detector."""
    sipp = start_sipp(answering_scenario(tmp_path, "dtmf_echo"), "-rtp_echo")

    run = run_softphone(sipp.uri, "--dtmf", "19#*A", "--dtmf-delay", "0.2", "--hangup-after-dtmf", "0.5",
                        "--timeout", "20")

    assert run.returncode == 0, run.stderr
    assert run.summary["digits_sent"] == "19#*A"
    assert run.summary["digits_received"] == "19#*A"
    sipp_rc, sipp_out = sipp.wait()
    assert sipp_rc == 0, sipp_out


@pytest.mark.timeout(60)
def test_custom_headers_and_local_port_reach_the_callee(start_sipp, tmp_path: Path) -> None:
    local_port = free_udp_port()
    checks = f"""
      <ereg regexp="^ *case-42$" search_in="hdr" header="X-Voicebot-Case:" check_it="true" assign_to="case"/>
      <ereg regexp="^ *two words;x=1$" search_in="hdr" header="X-Other:" check_it="true" assign_to="other"/>
      <ereg regexp="127.0.0.1:{local_port}" search_in="hdr" header="Via:" check_it="true" assign_to="via"/>
      <log message="[$case] [$other] [$via]"/>
    """
    sipp = start_sipp(answering_scenario(tmp_path, "headers", invite_actions=checks))

    run = run_softphone(sipp.uri, "--duration", "0.5", "--local-port", str(local_port),
                        "--header", "X-Voicebot-Case: case-42", "--header", "X-Other: two words;x=1")

    assert run.returncode == 0, run.stderr
    sipp_rc, sipp_out = sipp.wait()
    assert sipp_rc == 0, sipp_out  # a missing or altered header, or another source port, fails the regexps


DIGEST_CHALLENGE = """
  <recv request="INVITE"/>
  <send>
    <![CDATA[
      SIP/2.0 401 Unauthorized
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      WWW-Authenticate: Digest realm="voicebot.test", nonce="4f1b2c3d5e6f", algorithm=MD5
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("password", "answered"), [("s3cret", True), ("wrong", False)])
def test_digest_auth_answers_a_401_challenge(start_sipp, tmp_path: Path, password: str, answered: bool) -> None:
    verify = """
      <verifyauth assign_to="auth_ok" username="alice" password="s3cret"/>
    """
    refuse_bad_auth = """
      <nop test="auth_ok" next="answer"/>
      <send>
        <![CDATA[
          SIP/2.0 403 Forbidden
          [last_Via:]
          [last_From:]
          [last_To:];tag=[pid]SIPpTag02[call_number]
          [last_Call-ID:]
          [last_CSeq:]
          Content-Length: 0
        ]]>
      </send>
      <recv request="ACK" next="end"/>
      <label id="answer"/>
    """
    scenario = answering_scenario(tmp_path, "digest", before=DIGEST_CHALLENGE, invite_actions=verify,
                                  before_answer=refuse_bad_auth)
    sipp = start_sipp(scenario)

    run = run_softphone(sipp.uri, "--duration", "0.5", "--username", "alice", "--password", password)

    if answered:
        assert run.returncode == 0, run.stderr
        assert run.summary["result"] == "answered"
    else:
        assert run.returncode == 1
        assert run.summary["result"] == "rejected"
        assert run.summary["status_code"] == 403
    sipp.wait()


@pytest.mark.timeout(60)
def test_unanswered_call_times_out(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent_peer:  # receives INVITEs, never replies
        silent_peer.bind(("127.0.0.1", 0))
        port = silent_peer.getsockname()[1]

        run = run_softphone(f"sip:nobody@127.0.0.1:{port}", "--timeout", "2")

        silent_peer.settimeout(1)
        assert b"INVITE sip:nobody@" in silent_peer.recv(65536)
    assert run.summary["result"] == "timeout"
    assert run.returncode == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tel:123"], "must start with 'sip:'"),
        (["sip:a@127.0.0.1", "--dtmf", "12x"], "invalid 'x'"),
        (["sip:a@127.0.0.1", "--header", "NoColon"], "Name: value"),
        (["sip:a@127.0.0.1", "--play", "/nonexistent.wav"], "--play file not found"),
        (["sip:a@127.0.0.1", "--duration", "90"], "shorter than --timeout"),
        (["sip:a@127.0.0.1", "--username", "u"], "--username and --password"),
        (["sip:a@127.0.0.1", "--record", "/tmp"], "must name a .wav file"),
        (["sip:a@127.0.0.1", "--hangup-after-dtmf", "1"], "needs --dtmf"),
        (["sip:a@127.0.0.1", "--tls-ca", "/etc/hostname"], "need a TLS URI"),
        (["sip:a@127.0.0.1;transport=sctp"], "transport=sctp is not supported"),
        (["sips:a@127.0.0.1", "--tls-cert", "/etc/hostname"], "--tls-cert and --tls-key go together"),
        (["sip:a@127.0.0.1;transport=tls", "--tls-ca", "/nonexistent.pem"], "--tls-ca file not found"),
    ],
)
def test_bad_arguments_exit_2_with_a_specific_message(args: list[str], message: str) -> None:
    completed = subprocess.run([sys.executable, "-m", "voicebot.softphone", *args], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=30)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert completed.stdout == ""


# ------------------------------------------------------------------------------------------------
# Pure helpers (no network)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answered", "status", "timed_out", "expected"),
    [
        (True, 200, False, "answered"),
        (True, 200, True, "timeout"),
        (False, 486, False, "rejected"),
        (False, 603, False, "rejected"),
        (False, 404, False, "rejected"),
        (False, 408, False, "timeout"),
        (False, 503, False, "failed"),
        (False, 0, False, "failed"),
    ],
)
def test_classify_result(answered: bool, status: int, timed_out: bool, expected: str) -> None:
    assert classify_result(answered=answered, status_code=status, timed_out=timed_out) == expected


def test_summary_exit_codes_and_text() -> None:
    def summary(result: str, error: str | None = None) -> CallSummary:
        return CallSummary(uri="sip:x@h", result=result, status_code=486, reason="Busy Here",  # type: ignore[arg-type]
                           duration=0.0, digits_sent="", digits_received="", recorded_seconds=None,
                           recording_rms=None, hangup=None, error=error)

    assert summary("answered").exit_code() == 0
    assert summary("answered", error="sending DTMF failed").exit_code() == 1
    assert summary("rejected").exit_code() == 1
    assert summary("timeout").exit_code() == 3
    assert summary("rejected").to_text().startswith("call rejected: 486 Busy Here")
    assert json.loads(summary("rejected").to_json())["status_code"] == 486


def test_resample_keeps_duration_and_pitch() -> None:
    rate_in, rate_out = 44100, 16000
    t = np.arange(rate_in) / rate_in
    out = resample_linear(np.sin(2 * np.pi * 440 * t), rate_in, rate_out)
    assert out.size == rate_out
    assert dominant_frequency(out, rate_out) == pytest.approx(440.0, abs=1.0)
    assert to_mono(np.array([[1.0, 0.0], [0.5, 0.5]])).tolist() == [0.5, 0.5]


def test_uri_transport() -> None:
    assert uri_transport("sip:1000@127.0.0.1:5060") == "udp"
    assert uri_transport("sips:1000@pbx.example.net") == "tls"
    assert uri_transport("sip:1000@127.0.0.1:5061;transport=TLS") == "tls"
    assert uri_transport("sip:1000@127.0.0.1;lr;transport=tcp?X-A=1") == "tcp"


def test_parse_header() -> None:
    assert parse_header("X-Foo:  bar baz ") == ("X-Foo", "bar baz")
    for bad in ("NoColon", ": value", "Bad Name: v"):
        with pytest.raises(UsageError):
            parse_header(bad)
