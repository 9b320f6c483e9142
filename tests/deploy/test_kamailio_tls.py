"""Kamailio forwarding to a voicebot node over mutual TLS (deploy/kamailio/kamailio.cfg -A WITH_TLS, tls.cfg).

Real processes on loopback: sipp calls Kamailio over UDP; Kamailio (Debian's kamailio-tls-modules) dispatches to
`voicebot serve` over TLS, presenting the edge certificate the node requires (listen.tls.client_auth: required);
the node's BYE goes back to the proxy over TLS along the Record-Route. A phone (baresip) may call the proxy over TLS
too, with SRTP end to end. Certificates come from tests/certs.py.
"""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import soundfile

from tests.certs import Pem, TestCa
from tests.deploy.kamailio_support import (
    KAMAILIO_TLS_CFG,
    Kamailio,
    identity_sipp_command,
    sipp_command,
    start_kamailio,
    stop_kamailio,
    tls_profiles,
)
from tests.integration.baresip_support import (
    BaresipConfig,
    free_baresip_ports,
    parse_sip_trace,
    start_baresip,
    stop_baresip,
    voiced_seconds,
)
from tests.integration.rawsip import RawPeer, sdp_offer
from tests.integration.support import ServerProcess, require_tool, start_server, stop_server
from tests.integration.test_baresip import write_caller_wav

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

EDGE_NAME = "edge.voicebot.test"


@dataclass(frozen=True)
class Pki:
    ca: TestCa
    node: Pem  # the voicebot node's certificate
    edge: Pem  # the proxy's certificate, from the CA the node trusts
    stranger: Pem  # a proxy certificate from a CA the node does not trust


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = TestCa(directory)
    stranger_ca = TestCa(directory / "stranger", "stranger CA")
    return Pki(ca, ca.issue("node", ["localhost", "127.0.0.1"]), ca.issue("edge", [EDGE_NAME, "127.0.0.1"]),
               stranger_ca.issue("stranger-edge", [EDGE_NAME, "127.0.0.1"]))


@pytest.fixture
def tls_node(tmp_path: Path, pki: Pki) -> Iterator[ServerProcess]:
    """A voicebot node taking SIP over TLS only from trunks whose certificate its CA signed (mutual TLS)."""
    require_tool("sipp")
    workdir = tmp_path / "node"
    workdir.mkdir()
    listen = (f"transports: [udp, tls], tls_port: 0, tls: {{cert_file: {pki.node.cert}, key_file: {pki.node.key}, "
              f"ca_file: {pki.ca.pem.cert}, client_auth: required}}")
    trunk = ('trunks:\n  - {name: edge, registrar: "sip:127.0.0.1", register: false, allow_from: [127.0.0.1/32], '
             f'tls_names: [{EDGE_NAME}]}}\n')
    server = start_server(workdir, "log: {keyed_digits: shown}\n" + trunk, listen=listen)
    try:
        yield server
    finally:
        stop_server(server)


def start_tls_edge(workdir: Path, node: ServerProcess, pki: Pki, edge: Pem, *,
                   client_certificate: bool = True) -> Kamailio:
    """Kamailio with the deployed tls.cfg rendered for ``edge`` (its certificate) and the test CA; without
    ``client_certificate`` the proxy shows no certificate when it connects to the node."""
    workdir.mkdir(parents=True, exist_ok=True)
    profiles = tls_profiles(KAMAILIO_TLS_CFG, workdir, cert=edge.cert, key=edge.key, ca=pki.ca.pem.cert)
    if not client_certificate:
        server, client = profiles.read_text().split("[client:default]")
        kept = [line for line in client.splitlines() if not line.startswith(("certificate", "private_key"))]
        profiles.write_text(server + "[client:default]" + "\n".join(kept) + "\n")
    return start_kamailio(workdir, [], tls_nodes=[(node.host, node.ports["tls"])], tls_config=profiles)


def start_identity_edge(workdir: Path, node: ServerProcess, pki: Pki, trusted: str) -> Kamailio:
    """The TLS edge believing caller identity only from ``trusted`` (TRUSTED_IDENTITY_SOURCES)."""
    workdir.mkdir(parents=True, exist_ok=True)
    profiles = tls_profiles(KAMAILIO_TLS_CFG, workdir, cert=pki.edge.cert, key=pki.edge.key, ca=pki.ca.pem.cert)
    return start_kamailio(workdir, [], tls_nodes=[(node.host, node.ports["tls"])], tls_config=profiles,
                          trusted_identity_sources=trusted)


def run_call(kamailio: Kamailio, workdir: Path, hold_ms: int = 2000) -> subprocess.CompletedProcess[str]:
    """One sipp keypad call (keys 4 #) to the proxy over UDP; sipp echoes the node's RTP back to it."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = sipp_command(kamailio, workdir, calls=1, rate=1, hold_ms=hold_ms, timeout_s=30) + ["-rtp_echo"]
    return subprocess.run(command, cwd=workdir, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          errors="replace", timeout=60)


def errors_of(workdir: Path) -> str:
    path = workdir / "sipp_errors.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def tls_options(node: ServerProcess, ca: TestCa, client: Pem) -> str:
    """The status line of an OPTIONS sent to the node's TLS port by a client presenting ``client``."""
    context = ssl.create_default_context(cafile=str(ca.pem.cert))
    context.load_cert_chain(str(client.cert), str(client.key))
    with socket.create_connection(("127.0.0.1", node.ports["tls"]), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as sock:
        host, port = sock.getsockname()[:2]
        sock.sendall((f"OPTIONS sip:{node.host}:{node.ports['tls']};transport=tls SIP/2.0\r\n"
                      f"Via: SIP/2.0/TLS {host}:{port};branch=z9hG4bKcheck{port}\r\n"
                      f"From: <sip:check@{host}>;tag=check\r\nTo: <sip:{node.host}>\r\n"
                      f"Call-ID: check-{port}@{host}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                      "Content-Length: 0\r\n\r\n").encode())
        return sock.recv(65536).decode(errors="replace").split("\r\n", 1)[0]


def test_call_through_kamailio_over_mutual_tls(tmp_path: Path, tls_node: ServerProcess, pki: Pki) -> None:
    kamailio = start_tls_edge(tmp_path / "kamailio", tls_node, pki, pki.edge)
    try:
        result = run_call(kamailio, tmp_path / "sipp")
        assert result.returncode == 0, errors_of(tmp_path / "sipp") + "\n".join(kamailio.lines[-30:])
        ended = tls_node.wait_for("call ended")[0]
        offered = tls_node.wait_for_match("call offered", call_id=ended["call_id"])
    finally:
        stop_kamailio(kamailio)
        (tmp_path / "kamailio.log").write_text("\n".join(kamailio.lines) + "\n")
    # The INVITE reached the node over TLS from the trusted trunk, which showed the edge certificate.
    assert (offered["transport"], offered["trunk"], offered["tls_peer"]) == ("tls", "edge", EDGE_NAME), offered
    peers = {record["subject"] for record in tls_node.records("tls peer certificate")}
    assert peers == {EDGE_NAME}
    # Answered, media both ways (sipp echoed the greeting back), keys relayed, the node hung up.
    assert (ended["outcome"], ended["digits"], ended["end_reason"]) == ("completed", "4", "bot hangup"), ended
    assert ended["rtp_sent"] > 50 and ended["rtp_received"] > 50, ended
    # The proxy dispatched to the node's TLS socket and the node's BYE came back through it (Record-Route).
    assert kamailio.grep(f"to sip:{tls_node.host}:{tls_node.ports['tls']};transport=tls")
    assert kamailio.grep("edge: in-dialog BYE")
    assert not tls_node.records("tls handshake failed")

    # The trunk's tls_names make its address alone worthless: the same source over plain UDP is refused.
    peer = RawPeer((tls_node.host, tls_node.port))
    try:
        peer.send(peer.request("INVITE", tls_node.uri, body=sdp_offer("127.0.0.1", 40000),
                               content_type="application/sdp"))
        refused = peer.wait_reply("INVITE", timeout=10)
    finally:
        peer.close()
    assert refused is not None and refused.status == 403, refused
    rejected = tls_node.wait_for("call rejected: trunk requires mutual TLS")[0]
    assert rejected["trunk"] == "edge" and "over mutual TLS only" in rejected["reason"], rejected


@pytest.mark.parametrize("shown", ["untrusted", "none"])
def test_proxy_without_a_trusted_certificate_fails_the_call_and_the_node_keeps_serving(
        tmp_path: Path, tls_node: ServerProcess, pki: Pki, shown: str) -> None:
    """The proxy shows a certificate from a CA the node does not trust, or none at all."""
    kamailio = start_tls_edge(tmp_path / "kamailio", tls_node, pki, pki.stranger if shown == "untrusted" else pki.edge,
                              client_certificate=shown == "untrusted")
    try:
        result = run_call(kamailio, tmp_path / "sipp", hold_ms=200)
        failure = tls_node.wait_for("tls handshake failed")[0]
    finally:
        stop_kamailio(kamailio)
        (tmp_path / "kamailio.log").write_text("\n".join(kamailio.lines) + "\n")
    assert result.returncode != 0  # the caller got a failure, not a call
    assert re.search(r"received 'SIP/2.0 (408|503)", errors_of(tmp_path / "sipp")), errors_of(tmp_path / "sipp")
    assert failure["src"].startswith("127.0.0.1:")
    expected = "certificate verify failed" if shown == "untrusted" else "PEER_DID_NOT_RETURN_A_CERTIFICATE"
    assert expected in failure["reason"], failure
    assert tls_node.records("call offered") == []
    # No crash: the node still answers over UDP and over TLS to a trusted client.
    assert tls_node.proc.poll() is None
    assert tls_options(tls_node, pki.ca, pki.edge).startswith("SIP/2.0 200")
    assert {record["subject"] for record in tls_node.records("tls peer certificate")} == {EDGE_NAME}


def test_phone_over_tls_to_the_proxy_and_mutual_tls_to_the_node_with_srtp(tmp_path: Path, pki: Pki) -> None:
    """Callers' side over TLS too: baresip (no client certificate, as phones have none) → the proxy's TLS listener
    (the edge certificate) → mutual TLS → the node, SRTP required by the node and keyed end to end (SDES travels
    only over TLS hops); media goes between phone and node, Kamailio relays signalling only."""
    require_tool("baresip")
    listen = (f"transports: [udp, tls], tls_port: 0, tls: {{cert_file: {pki.node.cert}, key_file: {pki.node.key}, "
              f"ca_file: {pki.ca.pem.cert}, client_auth: required}}")
    trunk = ('trunks:\n  - {name: edge, registrar: "sip:127.0.0.1", register: false, allow_from: [127.0.0.1/32], '
             f'media_encryption: required, tls_names: [{EDGE_NAME}]}}\n')
    (tmp_path / "node").mkdir()
    node = start_server(tmp_path / "node", "log: {keyed_digits: shown}\n" + trunk, listen=listen)
    kamailio = start_tls_edge(tmp_path / "kamailio", node, pki, pki.edge)
    caller_wav = tmp_path / "caller.wav"
    write_caller_wav(caller_wav)
    sip_port, ctrl_port = free_baresip_ports()
    baresip = start_baresip(BaresipConfig(
        config_dir=tmp_path / "baresip", sip_port=sip_port, ctrl_port=ctrl_port, source_wav=caller_wav,
        dump_dir=tmp_path / "baresip-audio", mediaenc="srtp-mand", transport="tls", tls_ca=pki.ca.pem.cert))
    try:
        assert kamailio.tls_port is not None
        assert baresip.command("dial", f"sip:1000@127.0.0.1:{kamailio.tls_port}").get("ok")
        established = baresip.wait_event("CALL_ESTABLISHED", timeout=20)
        time.sleep(3.0)  # part of the greeting first
        baresip.send_digits("12#")
        baresip.wait_event("CALL_CLOSED", timeout=40)
        offered = node.wait_for_match("call offered", call_id=established["id"])
        ended = node.wait_for_match("call ended", timeout=30, call_id=established["id"])
    finally:
        stop_baresip(baresip)
        stop_kamailio(kamailio)
        stop_server(node)
        (tmp_path / "kamailio.log").write_text("\n".join(kamailio.lines) + "\n")
    # The phone reached the proxy over TLS; the proxy reached the node over mutual TLS with the edge certificate.
    trace = parse_sip_trace(baresip.log())
    proxy = f"127.0.0.1:{kamailio.tls_port}"
    invites = [m for m in trace if m.start_line.startswith("INVITE ") and m.destination == proxy]
    assert invites and ";transport=tls" in invites[0].start_line, trace[:4]
    assert "TLS 127.0.0.1:" in baresip.log() and f"-> {proxy}" in baresip.log()
    assert (offered["transport"], offered["trunk"], offered["tls_peer"]) == ("tls", "edge", EDGE_NAME), offered
    # SRTP end to end: the node decrypted the phone's media (RFC 4733 keys) and the phone heard the bot.
    assert ended["srtp"] in ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32") and ended["srtp_auth_failed"] == 0
    assert (ended["digits"], ended["outcome"], ended["end_reason"]) == ("12", "completed", "bot hangup"), ended
    assert ended["rtp_received"] > 100 and ended["rtp_sent"] > 100, ended
    assert "RTP/SAVP" in baresip.log() and "a=crypto:" in baresip.log()
    heard, rate = soundfile.read(str(baresip.decoded_dumps()[0]), dtype="int16")
    assert voiced_seconds(heard, rate) > 1.0
    # The node's BYE went back through the proxy (Record-Route) and on to the phone over its TLS connection.
    assert kamailio.grep("edge: in-dialog BYE")
    assert any(m.source == proxy and m.start_line.startswith("BYE ") for m in trace), trace
    assert not node.records("tls handshake failed")


def test_the_edge_removes_caller_identity_from_untrusted_callers(tmp_path: Path, tls_node: ServerProcess,
                                                                  pki: Pki) -> None:
    """The node believes P-Asserted-Identity from its trunk (the proxy, over mutual TLS): the proxy must not pass on
    one a caller chose. A sipp caller outside TRUSTED_IDENTITY_SOURCES sends one: the node sees the From; a carrier
    inside it keeps its asserted number."""
    kamailio = start_identity_edge(tmp_path / "kamailio", tls_node, pki, trusted="127.0.0.3/32")
    offered: dict[str, dict] = {}
    try:
        for source, asserted in (("127.0.0.2", "+15550001111"), ("127.0.0.3", "+15550002222")):
            workdir = tmp_path / f"sipp-{source}"
            workdir.mkdir()
            result = subprocess.run(identity_sipp_command(kamailio, workdir, source=source, asserted=asserted),
                                    cwd=workdir, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                    errors="replace", timeout=60)
            assert result.returncode == 0, errors_of(workdir) + "\n".join(kamailio.lines[-20:] + tls_node.lines[-12:])
            offered[source] = tls_node.wait_for("call offered", count=len(offered) + 1)[-1]
    finally:
        stop_kamailio(kamailio)
        (tmp_path / "kamailio.log").write_text("\n".join(kamailio.lines) + "\n")
    untrusted, trusted = offered["127.0.0.2"], offered["127.0.0.3"]
    assert (untrusted["transport"], untrusted["trunk"], untrusted["tls_peer"]) == ("tls", "edge", EDGE_NAME)
    assert (untrusted["identity"], untrusted["caller"]) == ("from", "sipp"), untrusted
    assert trusted["identity"] == "pai", trusted  # the header survives from a trusted source: the node believes it
    assert kamailio.grep("caller identity headers removed from INVITE")
    assert len(kamailio.grep("caller identity headers removed")) == 1
