"""Softphones calling `voicebot serve` over SIP/TLS (mutual) with SRTP media, on loopback.

The node takes calls from the "phones" trunk only over TLS with the phone's client certificate (trunks[].tls_names,
listen.tls.client_auth: required) and only with SRTP (media_encryption: required). Callers:
- baresip (Debian 1.0): account `;transport=tls`, `mediaenc=srtp-mand`, `sip_certificate` for mutual TLS;
- the pjsua2 softphone (`voicebot call <uri>;transport=tls --tls-ca --tls-cert --tls-key --srtp mandatory`),
  which also refuses a server whose certificate does not chain to its CA.
Certificates come from tests/certs.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import soundfile

from tests.certs import Pem, TestCa
from tests.integration.baresip_support import (
    BaresipConfig,
    free_baresip_ports,
    parse_sip_trace,
    start_baresip,
    stop_baresip,
    voiced_seconds,
)
from tests.integration.support import REPO, ServerProcess, start_server, stop_server
from tests.integration.test_baresip import write_caller_wav

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

PHONE_NAME = "phone.voicebot.test"
SRTP_SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")


@dataclass(frozen=True)
class Pki:
    ca: TestCa
    node: Pem
    phone: Pem  # the phones' client certificate
    stranger_ca: TestCa  # signs nothing the node shows


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = TestCa(directory)
    return Pki(ca, ca.issue("node", ["localhost", "127.0.0.1"]), ca.issue("phone", [PHONE_NAME]),
               TestCa(directory / "stranger", "stranger CA"))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("node")
    listen = (f"transports: [udp, tls], tls_port: 0, tls: {{cert_file: {pki.node.cert}, key_file: {pki.node.key}, "
              f"ca_file: {pki.ca.pem.cert}, client_auth: required}}")
    trunk = ('trunks:\n  - {name: phones, registrar: "sip:127.0.0.1", register: false, allow_from: [127.0.0.1/32], '
             f'media_encryption: required, tls_names: [{PHONE_NAME}]}}\n')
    server = start_server(workdir, "log: {keyed_digits: shown}\n" + trunk, listen=listen)
    yield server
    stop_server(server)


def assert_tls_srtp_call(server: ServerProcess, call_id: str, digits: str) -> dict:
    """The call came over TLS from the phones trunk with the phone's certificate, and ran on SRTP."""
    offered = server.wait_for_match("call offered", call_id=call_id)
    assert (offered["transport"], offered["trunk"], offered["tls_peer"]) == ("tls", "phones", PHONE_NAME), offered
    ended = server.wait_for_match("call ended", timeout=30, call_id=call_id)
    assert ended["srtp"] in SRTP_SUITES and ended["srtp_auth_failed"] == 0, ended
    assert ended["digits"] == digits and ended["outcome"] == "completed", ended  # RFC 4733 from decrypted SRTP
    assert ended["rtp_received"] > 100 and ended["rtp_sent"] > 100, ended
    return ended


def test_baresip_over_mutual_tls_with_mandatory_srtp(tls_server: ServerProcess, pki: Pki, tmp_path: Path) -> None:
    if shutil.which("baresip") is None:
        pytest.fail("baresip is not installed: run scripts/setup.sh (it installs the apt packages)")
    caller_wav = tmp_path / "caller.wav"
    write_caller_wav(caller_wav)
    bundle = tmp_path / "phone.pem"  # baresip's sip_certificate: certificate and key in one file
    bundle.write_text(pki.phone.cert.read_text() + pki.phone.key.read_text())
    sip_port, ctrl_port = free_baresip_ports()
    baresip = start_baresip(BaresipConfig(
        config_dir=tmp_path / "baresip", sip_port=sip_port, ctrl_port=ctrl_port, source_wav=caller_wav,
        dump_dir=tmp_path / "baresip-audio", mediaenc="srtp-mand", transport="tls", tls_certificate=bundle,
        tls_ca=pki.ca.pem.cert))
    try:
        # the account's ;transport=tls is added to the dialled URI
        assert baresip.command("dial", f"sip:1000@127.0.0.1:{tls_server.ports['tls']}").get("ok")
        established = baresip.wait_event("CALL_ESTABLISHED", timeout=20)
        baresip.wait_heard(1.0, timeout=15)  # a second of the greeting heard (decrypted) before keying in
        baresip.send_digits("12#")
        baresip.wait_event("CALL_CLOSED", timeout=40)
    finally:
        stop_baresip(baresip)
    assert_tls_srtp_call(tls_server, established["id"], "12")
    trace = parse_sip_trace(baresip.log())
    node = f"127.0.0.1:{tls_server.ports['tls']}"
    invites = [m for m in trace if m.start_line.startswith("INVITE ") and m.destination == node]
    assert invites and ";transport=tls" in invites[0].start_line
    assert any(m.source == node and m.start_line.startswith("BYE ") for m in trace)  # the node's BYE, same link
    assert "RTP/SAVP" in baresip.log() and "a=crypto:" in baresip.log()
    # baresip (srtp-mand) plays only media that authenticates under the key the node answered: it heard the bot
    heard, rate = soundfile.read(str(baresip.decoded_dumps()[0]), dtype="int16")
    assert voiced_seconds(heard, rate) > 1.0


def softphone(uri: str, *args: str) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, "-m", "voicebot.cli", "call", uri, *args, "--timeout", "60", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_pjsua2_softphone_over_mutual_tls_with_mandatory_srtp(tls_server: ServerProcess, pki: Pki,
                                                              tmp_path: Path) -> None:
    heard = tmp_path / "heard.wav"
    uri = f"sip:1000@127.0.0.1:{tls_server.ports['tls']};transport=tls"
    summary, stderr = softphone(uri, "--tls-ca", str(pki.ca.pem.cert), "--tls-cert", str(pki.phone.cert),
                                "--tls-key", str(pki.phone.key), "--srtp", "mandatory", "--record", str(heard),
                                "--dtmf", "31#", "--dtmf-delay", "3", "--duration", "30")
    assert summary["result"] == "answered", stderr[-3000:]
    ended = tls_server.wait_for_match("call ended", timeout=30, digits="31")
    assert_tls_srtp_call(tls_server, ended["call_id"], "31")
    audio, rate = soundfile.read(str(heard), dtype="int16")
    assert voiced_seconds(audio if audio.ndim == 1 else audio[:, 0], rate) > 2.0


def test_pjsua2_softphone_refuses_a_server_certificate_from_another_ca(tls_server: ServerProcess, pki: Pki) -> None:
    offered = len(tls_server.records("call offered"))
    uri = f"sip:1000@127.0.0.1:{tls_server.ports['tls']};transport=tls"
    summary, stderr = softphone(uri, "--tls-ca", str(pki.stranger_ca.pem.cert), "--tls-cert", str(pki.phone.cert),
                                "--tls-key", str(pki.phone.key), "--srtp", "mandatory", "--duration", "5")
    assert summary["result"] == "failed", summary
    assert summary["status_code"] == 503 and "certificate verification" in summary["reason"], summary  # no INVITE sent
    assert len(tls_server.records("call offered")) == offered
    assert tls_server.proc.poll() is None
