"""SRTP (SDES) against a running `voicebot serve` with real peers on loopback.

- baresip `mediaenc=srtp-mand` (RTP/SAVP) calls a trunk whose policy is `required`: the bot is heard (baresip drops
  media that is not SRTP under its key), DTMF and the recording work on the decrypted media;
- a plain RTP/AVP offer to that trunk gets 488 with the reason; with `optional`, plain RTP is served and a
  best-effort offer (baresip `mediaenc=srtp`: RTP/AVP with a=crypto) gets SRTP;
- a raw UDP peer speaking SRTP with a key it chose: the server's packets are not PCMU on the wire and decrypt with
  the answered key; forged and replayed packets are dropped and counted, one log line, no crash; keys never logged;
- the pjsua2 softphone (`voicebot call --srtp mandatory`) keys digits over SRTP.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pylibsrtp
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
from tests.integration.rawsip import RawPeer, media_port
from tests.integration.support import REPO, ServerProcess, api_request, start_server, stop_server
from tests.integration.test_baresip import write_caller_wav
from voicebot.api.tokens import TokenStore
from voicebot.rtp.dtmf import DtmfSender
from voicebot.rtp.g711 import ulaw_decode

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

REQUIRED_TRUNK = """trunks:
  - {name: lab, registrar: "sip:127.0.0.1", register: false, allow_from: [127.0.0.1/32], media_encryption: required}
"""


def _server(tmp: Path, extra: str) -> Iterator[ServerProcess]:
    tokens = TokenStore.load(tmp / "tokens.json")
    admin = tokens.create("admin")
    tokens.save()
    server = start_server(tmp, "log: {level: DEBUG, keyed_digits: shown}\n" + extra)
    server.workdir.joinpath("admin.token").write_text(admin)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def required_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from _server(tmp_path_factory.mktemp("required"), REQUIRED_TRUNK)


@pytest.fixture(scope="module")
def optional_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from _server(tmp_path_factory.mktemp("optional"), "media_encryption: optional\n")


def srtp_metrics(server: ServerProcess) -> dict[str, int]:
    port = server.wait_for("api listening")[0]["port"]
    with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={
            "Authorization": f"Bearer {(server.workdir / 'admin.token').read_text()}"}), timeout=10) as response:
        text = response.read().decode()
    return {m.group(1): int(m.group(2)) for m in re.finditer(r'voicebot_srtp_packets_total\{result="(\w+)"\} (\d+)',
                                                             text)}


def baresip_for(tmp: Path, mediaenc: str | None) -> BaresipProcess:
    if shutil.which("baresip") is None:
        pytest.fail("baresip is not installed: run scripts/setup.sh (it installs the apt packages)")
    caller_wav = tmp / "caller.wav"
    write_caller_wav(caller_wav)
    sip_port, ctrl_port = free_baresip_ports()
    return start_baresip(BaresipConfig(config_dir=tmp / "baresip", sip_port=sip_port, ctrl_port=ctrl_port,
                                       source_wav=caller_wav, dump_dir=tmp / "baresip-audio", mediaenc=mediaenc))


def ended_for(server: ServerProcess, call_id: str) -> dict:
    return server.wait_for_match("call ended", timeout=30, call_id=call_id)


def no_key_in_log(server: ServerProcess, *keys: bytes) -> None:
    text = "\n".join(server.lines)
    for key in keys:
        for form in (base64.b64encode(key).decode(), base64.b64encode(key).decode().rstrip("="), key.hex()):
            assert form not in text, "an SRTP master key reached the server log"


def test_baresip_srtp_mandatory_call_to_required_trunk(required_server: ServerProcess, tmp_path: Path) -> None:
    before = srtp_metrics(required_server)
    baresip = baresip_for(tmp_path, "srtp-mand")
    try:
        assert baresip.command("dial", required_server.uri).get("ok")
        established = baresip.wait_event("CALL_ESTABLISHED", timeout=20)
        baresip.wait_heard(1.0, timeout=15)  # a second of the greeting heard (decrypted) first
        baresip.send_digits("12#")
        baresip.wait_event("CALL_CLOSED", timeout=40)
    finally:
        stop_baresip(baresip)
    ended = ended_for(required_server, established["id"])
    assert ended["srtp"] in ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"), ended
    assert ended["digits"] == "12" and ended["outcome"] == "completed"  # RFC 4733 read from decrypted packets
    assert ended["rtp_received"] > 100 and ended["srtp_auth_failed"] == 0
    log = baresip.log()
    assert "RTP/SAVP" in log and "a=crypto:" in log  # offer and answer in baresip's SIP trace
    # baresip (srtp-mand) only plays media that authenticates under the key we answered: it heard the bot
    heard, rate = soundfile.read(str(baresip.decoded_dumps()[0]), dtype="int16")
    assert voiced_seconds(heard, rate) > 1.0
    # the recording holds the caller's decrypted tone bursts, not noise: left channel is 440 Hz
    recording = [p for p in required_server.recordings() if p.name.startswith(established["id"])][0]
    stereo, rec_rate = soundfile.read(str(recording), dtype="int16")
    left = stereo[:, 0].astype(np.float64)
    voiced = left[np.abs(left) > 1000]
    spectrum = np.abs(np.fft.rfft(left))
    assert len(voiced) > rec_rate and abs(np.fft.rfftfreq(len(left), 1 / rec_rate)[np.argmax(spectrum)] - 440) < 15
    after = srtp_metrics(required_server)
    assert after["unprotected"] - before.get("unprotected", 0) >= ended["rtp_received"]
    assert after["protected"] - before.get("protected", 0) >= ended["rtp_sent"]


def test_plain_offer_to_required_trunk_gets_488(required_server: ServerProcess, tmp_path: Path) -> None:
    baresip = baresip_for(tmp_path, None)
    try:
        assert baresip.command("dial", required_server.uri).get("ok")
        baresip.wait_event("CALL_CLOSED", timeout=20)
    finally:
        stop_baresip(baresip)
    server_addr = f"{required_server.host}:{required_server.port}"
    answers = [m.start_line for m in parse_sip_trace(baresip.log()) if m.source == server_addr]
    assert "SIP/2.0 488 Not Acceptable Here" in answers, answers
    refused = required_server.wait_for("call rejected: no common codec")[-1]
    assert "required" in refused["reason"] and "a=crypto" in refused["reason"]


def test_optional_serves_plain_rtp_and_best_effort_srtp(optional_server: ServerProcess, tmp_path: Path) -> None:
    for mediaenc, expected in ((None, None), ("srtp", "AES_CM_128_HMAC_SHA1_80")):
        (tmp_path / str(mediaenc)).mkdir()
        baresip = baresip_for(tmp_path / str(mediaenc), mediaenc)
        try:
            assert baresip.command("dial", optional_server.uri).get("ok")
            established = baresip.wait_event("CALL_ESTABLISHED", timeout=20)
            baresip.wait_heard(1.0, timeout=15)  # a second of the greeting heard first
            baresip.send_digits("7#")
            baresip.wait_event("CALL_CLOSED", timeout=40)
        finally:
            stop_baresip(baresip)
        ended = ended_for(optional_server, established["id"])
        assert ended["srtp"] == expected, ended
        assert ended["digits"] == "7" and ended["rtp_received"] > 50
        heard, rate = soundfile.read(str(baresip.decoded_dumps()[0]), dtype="int16")
        assert voiced_seconds(heard, rate) > 1.0


# ------------------------------------------------------------------------------------------ raw SRTP peer


def _rtp(sequence: int, timestamp: int, ssrc: int, payload: bytes, payload_type: int = 0,
         marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, payload_type | (0x80 if marker else 0), sequence, timestamp, ssrc) + payload


def test_raw_srtp_peer_forged_and_replayed_packets_are_dropped_and_counted(optional_server: ServerProcess) -> None:
    server = optional_server
    before = srtp_metrics(server)
    our_key = secrets.token_bytes(30)
    peer = RawPeer((server.host, server.port))
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind(("127.0.0.1", 0))
    media.settimeout(5)
    uri = f"sip:1000@{server.host}:{server.port}"
    try:
        rtp_port = media.getsockname()[1]
        offer = (f"v=0\r\no=raw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                 f"m=audio {rtp_port} RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
                 f"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
                 f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(our_key).decode()}\r\n")
        peer.send(peer.request("INVITE", uri, body=offer, content_type="application/sdp", cseq=1))
        ok = peer.wait_reply("INVITE", timeout=20)
        assert ok is not None and ok.status == 200, ok
        to_tag = re.search(r"tag=([^;>\s]+)", ok.header("to") or "")
        assert to_tag is not None
        peer.send(peer.request("ACK", uri, to_tag=to_tag.group(1), cseq=1))
        assert media_port(ok.body) > 0 and "m=audio" in ok.body and "RTP/SAVP" in ok.body
        crypto = re.search(r"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:([A-Za-z0-9+/=]+)", ok.body)
        assert crypto is not None, ok.body
        server_key = base64.b64decode(crypto.group(1))
        rx = pylibsrtp.Session(pylibsrtp.Policy(key=server_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
        tx = pylibsrtp.Session(pylibsrtp.Policy(key=our_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))

        # The bot's greeting, as it crosses the wire: encrypted; decrypted with the answered key: speech in PCMU.
        wire: list[bytes] = []
        while len(wire) < 150:
            data, source = media.recvfrom(2048)
            if data[1] < 200:  # RTP, not RTCP
                wire.append(data)
        server_media = source
        decoded = [rx.unprotect(packet) for packet in wire]
        assert all(len(p) == len(d) + 10 and p[:12] == d[:12] for p, d in zip(wire, decoded))
        plain_audio = np.concatenate([ulaw_decode(d[12:]) for d in decoded])
        wire_audio = np.concatenate([ulaw_decode(p[12:172]) for p in wire])
        assert voiced_seconds(plain_audio, 8000) > 1.0
        # ciphertext decodes to full-scale noise, not the prompt: no 20 ms frame is near silence
        frames = np.abs(wire_audio.astype(np.float64)).reshape(-1, 160).mean(axis=1)
        assert (frames > 2000).all() and not np.array_equal(wire_audio, plain_audio)

        ssrc, sequence, timestamp = secrets.randbits(32), 1000, 5000
        sent: list[bytes] = []

        def send_audio(count: int) -> None:
            nonlocal sequence, timestamp
            for _ in range(count):
                packet = tx.protect(_rtp(sequence, timestamp, ssrc, b"\xff" * 160))
                media.sendto(packet, server_media)
                sent.append(packet)
                sequence, timestamp = sequence + 1, timestamp + 160
                time.sleep(0.02)

        send_audio(20)  # valid SRTP: the server latches to us
        for index in range(10):  # forged: a flipped payload bit fails the HMAC
            forged = bytearray(tx.protect(_rtp(sequence + index, timestamp, ssrc, b"\xff" * 160)))
            forged[30] ^= 0x40
            media.sendto(bytes(forged), server_media)
        sequence += 10
        for packet in sent[:5]:  # replays of packets already accepted
            media.sendto(packet, server_media)
        send_audio(5)
        for digit in "42#":  # RFC 4733 events, SRTP-protected
            for event in DtmfSender().packets(digit, 120, 10):
                media.sendto(tx.protect(_rtp(sequence, timestamp, ssrc, event.payload, 101, event.marker)),
                             server_media)
                sequence += 1
                time.sleep(0.02)
            timestamp += 2000
            send_audio(10)
        deadline = time.monotonic() + 40
        while not any("BYE " in r for r in peer.requests) and time.monotonic() < deadline:
            peer.wait_reply("no-such-method", timeout=0.5)  # answers the server's BYE with 200 OK
        ended = ended_for(server, peer.call_id)
    finally:
        peer.close()
        media.close()
    assert ended["srtp"] == "AES_CM_128_HMAC_SHA1_80"
    assert ended["digits"] == "42"  # DTMF detected on decrypted media, after the forgeries
    assert ended["srtp_auth_failed"] == 10 and ended["srtp_replayed"] == 5, ended
    warnings = [r for r in server.records() if "SRTP packet" in r.get("msg", "") and "dropped" in r["msg"]]
    assert 1 <= len(warnings) <= 2  # throttled: one line per kind of trouble per 10 s, not one per packet
    after = srtp_metrics(server)
    assert after["dropped_auth"] - before.get("dropped_auth", 0) >= 10
    assert after["dropped_replay"] - before.get("dropped_replay", 0) >= 5
    assert server.proc.poll() is None
    no_key_in_log(server, our_key, server_key)


# ------------------------------------------------------------------------------------------ pjsua2 softphone


def test_pjsua2_softphone_keys_digits_over_srtp(required_server: ServerProcess, tmp_path: Path) -> None:
    heard = tmp_path / "heard.wav"
    proc = subprocess.run([sys.executable, "-m", "voicebot.cli", "call", required_server.uri, "--srtp", "mandatory",
                           "--record", str(heard), "--dtmf", "31#", "--dtmf-delay", "3", "--duration", "30",
                           "--timeout", "60", "--json"], cwd=REPO, capture_output=True, text=True, timeout=90,
                          stdin=subprocess.DEVNULL)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["result"] == "answered", proc.stderr[-3000:]
    ended = required_server.wait_for_match("call ended", timeout=30, digits="31")
    assert ended["srtp"] == "AES_CM_128_HMAC_SHA1_80"  # PJSIP offers AES_256 first: we take the first we run
    assert ended["srtp_auth_failed"] == 0 and ended["rtp_received"] > 100
    audio, rate = soundfile.read(str(heard), dtype="int16")
    assert voiced_seconds(audio if audio.ndim == 1 else audio[:, 0], rate) > 2.0
    status, _ = api_request(required_server.wait_for("api listening")[0]["port"], "GET", "/metrics", None)
    assert status == 401  # the SRTP counters are for authenticated operators only


def _offer(rtp_port: int, key: bytes, version: int = 1) -> str:
    return (f"v=0\r\no=raw 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {rtp_port} RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            f"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
            f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(key).decode()}\r\n")


def _answered_key(body: str) -> bytes:
    crypto = re.search(r"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:([A-Za-z0-9+/=]+)", body)
    assert crypto is not None, body
    return base64.b64decode(crypto.group(1))


def _rtp_from_server(media: socket.socket, count: int) -> list[bytes]:
    packets: list[bytes] = []
    while len(packets) < count:
        data, _ = media.recvfrom(2048)
        if data[1] < 200:
            packets.append(data)
    return packets


def test_reinvite_with_new_keys_rekeys_both_directions(optional_server: ServerProcess) -> None:
    server = optional_server
    key1, key2 = secrets.token_bytes(30), secrets.token_bytes(30)
    peer = RawPeer((server.host, server.port))
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind(("127.0.0.1", 0))
    media.settimeout(5)
    uri = f"sip:1000@{server.host}:{server.port}"
    inbound = pylibsrtp.Policy.SSRC_ANY_INBOUND
    try:
        peer.send(peer.request("INVITE", uri, body=_offer(media.getsockname()[1], key1),
                               content_type="application/sdp", cseq=1))
        ok = peer.wait_reply("INVITE", timeout=20)
        assert ok is not None and ok.status == 200, ok
        to_tag = re.search(r"tag=([^;>\s]+)", ok.header("to") or "")
        assert to_tag is not None
        peer.send(peer.request("ACK", uri, to_tag=to_tag.group(1), cseq=1))
        server_key1 = _answered_key(ok.body)
        rx1 = pylibsrtp.Session(pylibsrtp.Policy(key=server_key1, ssrc_type=inbound))
        for packet in _rtp_from_server(media, 10):
            rx1.unprotect(packet)
        # re-INVITE with a new key: the answer carries a new key of the server's too
        peer.send(peer.request("INVITE", uri, to_tag=to_tag.group(1), body=_offer(media.getsockname()[1], key2, 2),
                               content_type="application/sdp", cseq=2))
        ok2 = peer.wait_reply("INVITE", timeout=10)
        assert ok2 is not None and ok2.status == 200, ok2
        peer.send(peer.request("ACK", uri, to_tag=to_tag.group(1), cseq=2))
        server_key2 = _answered_key(ok2.body)
        assert server_key2 != server_key1
        time.sleep(0.1)  # packets the server sent before it answered are still queued: skip them
        while True:
            try:
                media.settimeout(0.01)
                media.recvfrom(2048)
            except socket.timeout:
                break
        media.settimeout(5)
        rx2 = pylibsrtp.Session(pylibsrtp.Policy(key=server_key2, ssrc_type=inbound))
        fresh = _rtp_from_server(media, 10)
        assert [len(rx2.unprotect(p)) for p in fresh] == [len(p) - 10 for p in fresh]
        with pytest.raises(pylibsrtp.Error):
            rx1.unprotect(fresh[-1])  # the old key no longer opens them
        server_media = (server.host, media_port(ok2.body))
        tx = pylibsrtp.Session(pylibsrtp.Policy(key=key2, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
        ssrc, sequence, timestamp = secrets.randbits(32), 1, 0
        for digit in "9#":
            for event in DtmfSender().packets(digit, 120, 10):
                media.sendto(tx.protect(_rtp(sequence, timestamp, ssrc, event.payload, 101, event.marker)),
                             server_media)
                sequence += 1
                time.sleep(0.02)
            timestamp += 2000
            for _ in range(10):
                media.sendto(tx.protect(_rtp(sequence, timestamp, ssrc, b"\xff" * 160)), server_media)
                sequence, timestamp = sequence + 1, timestamp + 160
                time.sleep(0.02)
        deadline = time.monotonic() + 40
        while not any("BYE " in r for r in peer.requests) and time.monotonic() < deadline:
            peer.wait_reply("no-such-method", timeout=0.5)
        ended = ended_for(server, peer.call_id)
    finally:
        peer.close()
        media.close()
    assert ended["digits"] == "9" and ended["srtp_rekeys"] == 1 and ended["srtp_auth_failed"] == 0, ended
    rekey = server.wait_for_match("re-INVITE", rekeyed=True)
    assert rekey["srtp"] == "AES_CM_128_HMAC_SHA1_80"
    no_key_in_log(server, key1, key2, server_key1, server_key2)
