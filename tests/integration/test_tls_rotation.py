"""Certificate rotation without downtime, end to end against `voicebot serve` with a Python ``ssl`` client.

The admin replaces listen.tls's certificate and key files and sends SIGHUP: a new TLS connection is shown the new
certificate (its serial) while a call set up over a connection opened before goes on (media, then the caller's BYE
over that same connection). Files that cannot serve — a key of another certificate, an expired certificate, a
missing key — are refused with an error naming the file, and the certificate in force keeps being shown.
Certificates come from tests/certs.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest
from cryptography import x509

from tests.certs import Pem, TestCa
from tests.integration.support import ServerProcess, start_server, stop_server
from tests.integration.test_sip_tcp_tls import StreamPeer, connect_tls, header, sdp_for, tls_client

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RELOADED = "tls certificate reloaded"
REFUSED = "tls certificate reload refused; the previous certificate keeps serving"


def serial_of(pem: Pem) -> int:
    return x509.load_pem_x509_certificate(pem.cert.read_bytes()).serial_number


def shown_serial(peer: StreamPeer) -> int:
    """The serial of the certificate the node showed on this connection."""
    der = peer.sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def install(live: Pem, cert: Path, key: Path | None) -> None:
    """What an admin (or certbot) does: replace the files in place, each by an atomic rename; no key: delete it."""
    for source, target in ((cert, live.cert), (key, live.key)):
        if source is None:
            target.unlink(missing_ok=True)
            continue
        staged = target.with_suffix(".new")
        staged.write_bytes(source.read_bytes())
        os.replace(staged, target)


def reload(server: ServerProcess, message: str) -> dict:
    """SIGHUP the node; the log record of this reload (``message``)."""
    before = len(server.records(message))
    server.proc.send_signal(signal.SIGHUP)
    return server.wait_for(message, count=before + 1, timeout=15)[before]


def options_over_new_connection(server: ServerProcess, ca: TestCa) -> int:
    """Open a new TLS connection, check OPTIONS is answered on it; the serial of the certificate it was shown."""
    peer = connect_tls(server, tls_client(ca))
    try:
        peer.request("OPTIONS", f"sip:1000@localhost:{server.ports['tls']};transport=tls", "TLS")
        assert peer.response("OPTIONS").startswith("SIP/2.0 200")
        return shown_serial(peer)
    finally:
        peer.sock.close()


def fresh_rtp(media: socket.socket) -> bytes:
    """A packet the node sent after now: drain what is queued, then wait for the next one."""
    media.setblocking(False)
    try:
        while True:
            media.recv(2048)
    except BlockingIOError:
        pass
    media.settimeout(5)
    return media.recv(2048)


def test_certificate_rotation_keeps_calls_and_refuses_broken_files(tmp_path: Path) -> None:
    ca = TestCa(tmp_path / "pki")
    names = ["localhost", "127.0.0.1"]
    first, second, third = (ca.issue(stem, names) for stem in ("first", "second", "third"))
    expired = ca.issue("expired", names, expired=True)
    live = Pem(tmp_path / "live" / "sip.crt", tmp_path / "live" / "sip.key")
    live.cert.parent.mkdir()
    install(live, first.cert, first.key)
    listen = f"transports: [udp, tls], tls_port: 0, tls: {{cert_file: {live.cert}, key_file: {live.key}}}"
    server = start_server(tmp_path, listen=listen)
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        media.bind(("127.0.0.1", 0))
        # A call over a connection opened before the rotation: the first certificate.
        caller = connect_tls(server, tls_client(ca))
        assert shown_serial(caller) == serial_of(first)
        uri = f"sip:1000@localhost:{server.ports['tls']};transport=tls"
        caller.request("INVITE", uri, "TLS", extra="Content-Type: application/sdp", body=sdp_for(media.getsockname()[1]))
        ok = caller.response("INVITE")
        assert ok.startswith("SIP/2.0 200"), ok
        to_tag = header(ok, "To").split("tag=")[1]
        caller.request("ACK", uri, "TLS", to_tag=to_tag)
        assert fresh_rtp(media)[0] >> 6 == 2

        # Rotation: new files, SIGHUP; a new connection is shown the second certificate.
        install(live, second.cert, second.key)
        reloaded = reload(server, RELOADED)
        assert reloaded["serial"] == f"{serial_of(second):X}", reloaded
        assert reloaded["previous_serial"] == f"{serial_of(first):X}", reloaded
        assert options_over_new_connection(server, ca) == serial_of(second)
        # The call on the old connection is still up: media flows, and the caller's BYE on that connection ends it.
        assert fresh_rtp(media)[0] >> 6 == 2
        caller.request("BYE", uri, "TLS", cseq=2, to_tag=to_tag)
        assert caller.response("BYE").startswith("SIP/2.0 200")
        ended = server.wait_for("call ended")[0]
        assert ended["end_reason"] == "remote hangup", ended

        # Broken files are refused with the file named; the second certificate keeps serving.
        broken = [((third.cert, second.key), live.key, "does not match"),  # the new certificate, the old key
                  ((expired.cert, expired.key), live.cert, "expired"),
                  ((third.cert, None), live.key, "cannot read key")]
        for (cert, key), at_fault, reason in broken:
            install(live, cert, key)
            refused = reload(server, REFUSED)
            assert refused["file"] == str(at_fault) and reason in refused["error"], refused
            assert str(at_fault) in refused["error"], refused
            assert refused["serving_serial"] == f"{serial_of(second):X}", refused
            assert options_over_new_connection(server, ca) == serial_of(second)
        assert len(server.records(RELOADED)) == 1

        # Fixed files are taken at the next reload.
        install(live, third.cert, third.key)
        assert reload(server, RELOADED)["serial"] == f"{serial_of(third):X}"
        assert options_over_new_connection(server, ca) == serial_of(third)
        assert reload(server, "tls certificate unchanged")["cert_file"] == str(live.cert)  # nothing new: no reload
        assert len(server.records(RELOADED)) == 2
        assert server.proc.poll() is None
        # Each reload, taken or refused, is in the audit log with the file it concerns.
        audited = [json.loads(line) for line in (tmp_path / "audit" / "audit.jsonl").read_text().splitlines()]
        reloads = [(entry["action"], entry["target"]) for entry in audited if entry["action"].startswith("config.")]
        assert reloads == [("config.reload", str(live.cert)), ("config.reload_refused", str(live.key)),
                           ("config.reload_refused", str(live.cert)), ("config.reload_refused", str(live.key)),
                           ("config.reload", str(live.cert))], reloads
    finally:
        media.close()
        stop_server(server)
