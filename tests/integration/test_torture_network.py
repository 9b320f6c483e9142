"""Every RFC 4475 torture message sent to a running server: the right response or a silent drop, and the
server still answers a normal call afterwards."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.integration.rawsip import parse_reply
from tests.integration.support import ServerProcess, run_sipp, SCENARIOS, free_media_port, free_udp_port
from tests.sip.torture import torture_files

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


# The server's final answer per message (None: no response can or may be formed, so it is dropped).
# 405: REGISTER/MESSAGE are known methods a contact-center UA does not serve; 501: unknown methods;
# 481: wsinv carries a To tag, so it is an in-dialog request for a dialog that does not exist;
# 200 for the valid INVITEs: the call is answered (media goes nowhere: egress is loopback-only in tests).
EXPECTED: dict[str, int | None] = {
    "wsinv.dat": 481, "intmeth.dat": 501, "esc01.dat": 200, "escnull.dat": 405, "esc02.dat": 501,
    "lwsdisp.dat": 200, "longreq.dat": 200, "dblreq.dat": 405, "semiuri.dat": 200, "transports.dat": 200,
    "mpart01.dat": 405, "unreason.dat": None, "noreason.dat": None,
    "badinv01.dat": 400, "clerr.dat": 400, "ncl.dat": 400, "scalar02.dat": 400, "scalarlg.dat": None,
    "quotbal.dat": 400, "ltgtruri.dat": 400, "lwsruri.dat": 400, "lwsstart.dat": 400, "trws.dat": 400,
    "escruri.dat": 400, "baddate.dat": 400, "regbadct.dat": 400, "badaspec.dat": 400, "baddn.dat": 400,
    "badvers.dat": 505, "mismatch01.dat": 400, "mismatch02.dat": 400, "bigcode.dat": None,
    "badbranch.dat": 400,
    "insuf.dat": 400, "unkscm.dat": 416, "novelsc.dat": 416, "unksm2.dat": 405, "bext01.dat": 420,
    "invut.dat": 415, "regaut01.dat": 405, "multi01.dat": 400, "mcl01.dat": 400, "bcast.dat": None,
    "zeromf.dat": 200, "cparam01.dat": 405, "cparam02.dat": 405, "regescrt.dat": 405, "sdp01.dat": 406,
    "inv2543.dat": 200,
}


def fresh_branch(data: bytes, n: int) -> bytes:
    """The RFC's messages reuse branch ids; give each its own so none is taken for a retransmission of another."""
    return re.sub(rb"branch=z9hG4bK", b"branch=z9hG4bK%dt" % n, data)


def final_response(data: bytes, server: ServerProcess) -> tuple[int | None, list[int]]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(1.0)
        sock.sendto(data, (server.host, server.port))
        seen: list[int] = []
        try:
            while True:
                raw, _ = sock.recvfrom(70000)
                reply = parse_reply(raw)
                assert reply is not None, f"server sent a non-response: {raw[:80]!r}"
                seen.append(reply.status)
                if reply.status >= 200:
                    return reply.status, seen
        except socket.timeout:
            return None, seen


def test_torture_messages_get_the_rfc_response(voicebot_server: ServerProcess, tmp_path: Path) -> None:
    files = torture_files()
    assert {f.name for f in files} == set(EXPECTED)
    wrong = {}
    for n, path in enumerate(files):
        data = path.read_bytes()
        if path.name != "badbranch.dat":  # its missing magic cookie is the point of the test
            data = fresh_branch(data, n)
        status, seen = final_response(data, voicebot_server)
        if status != EXPECTED[path.name]:
            wrong[path.name] = (EXPECTED[path.name], status, seen)
    assert not wrong, f"expected vs got: {wrong}"
    assert voicebot_server.proc.poll() is None
    # ... and a normal call still works end to end.
    args = [f"{voicebot_server.host}:{voicebot_server.port}", "-sf", str(SCENARIOS / "dtmf_info.xml"), "-m", "1",
            "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_media_port())]
    result = run_sipp(args, tmp_path)
    assert result.returncode == 0, result.stderr
    ended = voicebot_server.wait_for_match("call ended", digits="45")
    assert ended["outcome"] == "completed"
