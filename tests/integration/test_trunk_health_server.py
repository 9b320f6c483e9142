"""`voicebot serve` with a two-proxy trunk: its OPTIONS checks log a silent proxy down and, once a sipp proxy
answers on that port, up again; GET /trunks and /metrics show the same state."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from tests.integration.sipp_proxy import Proxy
from tests.integration.support import api_request, start_server, stop_server
from voicebot.api.tokens import TokenStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


def test_proxy_health_is_logged_and_shown_by_the_api(tmp_path: Path) -> None:
    working = Proxy("trunk_proxy.xml", tmp_path)
    working.start()
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # takes OPTIONS, never answers
    silent.bind(("127.0.0.1", 0))
    silent_port = silent.getsockname()[1]
    silent_uri = f"sip:127.0.0.1:{silent_port}"
    revived = Proxy("trunk_proxy.xml", tmp_path, port=silent_port)
    token = TokenStore.load(tmp_path / "tokens.json").create("admin")
    server = start_server(tmp_path, f"""
trunks:
  - name: carrier
    registrar: sip:carrier.example
    register: false
    proxies: ["{silent_uri}", "{working.uri}"]
    health: {{interval_s: 0.3, timeout_s: 0.2, down_after: 2, up_after: 1}}
""")
    try:
        down = server.wait_for_match("trunk proxy down", trunk="carrier", proxy=silent_uri)
        assert down["last_result"] == "timeout" and down["consecutive_failures"] == 2
        port = server.wait_for("api listening")[0]["port"]
        status, body = api_request(port, "GET", "/trunks", token)
        assert status == 200
        states = {p["uri"]: p for p in body["trunks"][0]["proxies"]}
        assert states[silent_uri]["up"] is False
        assert states[working.uri]["up"] is True and states[working.uri]["last_result"].startswith("200")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            metrics = response.read().decode()
        assert f'voicebot_trunk_proxy_up{{trunk="carrier",proxy="{silent_uri}"}} 0' in metrics
        assert f'voicebot_trunk_proxy_up{{trunk="carrier",proxy="{working.uri}"}} 1' in metrics

        silent.close()
        revived.start()  # a proxy answering on the silent one's port
        up = server.wait_for_match("trunk proxy up", trunk="carrier", proxy=silent_uri)
        assert up["last_result"].startswith("200")
        status, body = api_request(port, "GET", "/trunks", token)
        assert all(p["up"] for p in body["trunks"][0]["proxies"])
    finally:
        stop_server(server)
        silent.close()
        working.stop()
        revived.stop()
