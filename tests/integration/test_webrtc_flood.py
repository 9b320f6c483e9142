"""An anonymous /webrtc/offer flood is bounded: per-source cap and rate limit, browser calls count in
limits.max_calls (SIP gets 503 while they fill it), unconnected sessions close within seconds, and browser
media binds only the configured (API) address."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection

from tests.integration.rawsip import RawPeer, sdp_offer
from tests.integration.support import start_server, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

LIMITS = """limits: {max_calls: 2, max_calls_per_source: 2, browser_calls_per_source: 2,
         browser_offers_per_source_per_min: 6, browser_connect_timeout_s: 2}"""


def browser_offer(sink_port: int) -> str:
    """A real aiortc offer (audio + data channel) whose ICE candidate is a loopback socket that never answers:
    the attacker's offer, which leaves the server waiting for a connection."""

    async def make() -> str:
        pc = RTCPeerConnection()
        pc.addTransceiver("audio", direction="sendrecv")
        pc.createDataChannel("control")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    sdp = re.sub(r"^(a=candidate:\S+ \d+ udp \d+) \S+ \d+ (typ host.*)$", rf"\1 127.0.0.1 {sink_port} \2",
                 asyncio.run(make()), flags=re.MULTILINE)
    return re.sub(r"^a=candidate:.* typ (?!host).*\r?\n", "", sdp, flags=re.MULTILINE)


def post_offer(port: int, sdp: str) -> tuple[int, dict, str | None]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/webrtc/offer", method="POST",
                                     data=json.dumps({"type": "offer", "sdp": sdp}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read()), None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), exc.headers.get("Retry-After")


def sip_invite_status(host: str, port: int) -> int | None:
    peer = RawPeer((host, port))
    try:
        peer.send(peer.request("INVITE", f"sip:1000@{host}:{port}", body=sdp_offer("127.0.0.1", 40000),
                               content_type="application/sdp"))
        reply = peer.wait_reply("INVITE", timeout=5)
        return reply.status if reply else None
    finally:
        peer.close()


def test_offer_flood_is_capped_rate_limited_and_timed_out(tmp_path: Path) -> None:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # receives the server's ICE checks, never answers
    sink.bind(("127.0.0.1", 0))
    sdp = browser_offer(sink.getsockname()[1])
    assert "127.0.0.1" in sdp
    server = start_server(tmp_path, extra_config=LIMITS)
    try:
        api = server.wait_for("api listening")[0]["port"]
        answers = [post_offer(api, sdp) for _ in range(2)]
        assert [status for status, _, _ in answers] == [200, 200], answers
        for _, body, _ in answers:  # media binds the API's loopback address only, not every interface
            hosts = re.findall(r"^a=candidate:\S+ \d+ udp \d+ (\S+) \d+ typ host", body["sdp"], re.MULTILINE)
            assert hosts and set(hosts) == {"127.0.0.1"}, body["sdp"]

        status, body, retry = post_offer(api, sdp)  # a third at once from this address
        assert status == 429 and "in progress" in body["error"] and retry is not None, "\n".join(server.lines[-30:])

        assert sip_invite_status(server.host, server.port) == 503  # the browser calls fill limits.max_calls

        ended = server.wait_for("browser call not connected", count=2, timeout=15)
        assert all(entry["timeout_s"] == 2 for entry in ended)
        assert post_offer(api, sdp)[0] == 200  # their slots are free again
        assert post_offer(api, sdp)[0] == 200
        assert post_offer(api, sdp)[0] == 429  # 6th attempt: both slots taken again
        status, body, retry = post_offer(api, sdp)  # 7th within the minute: over the rate limit
        assert status == 429 and "a minute" in body["error"] and int(retry or 0) > 1
        assert server.proc.poll() is None
    finally:
        stop_server(server)
        sink.close()
