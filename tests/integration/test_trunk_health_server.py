"""`voicebot serve` with a two-proxy trunk: its OPTIONS checks log a silent proxy down and, once a sipp proxy
answers on that port, up again; GET /trunks and /metrics show the same state. A call the server places to the
trunk's domain (a caller's REFER) fails over from a proxy answering 503 to the next one."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from tests.integration.sipp_proxy import Proxy
from tests.integration.support import (SCENARIOS, api_request, free_media_port, free_udp_port, launch_server,
                                       run_sipp, start_server, stop_server, write_config)
from voicebot.api.tokens import TokenStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

TRUNK = """
trunks:
  - name: carrier
    registrar: sip:carrier.example
    register: false
    proxies: ["{first}", "{second}"]
    health: {{interval_s: {interval}, timeout_s: 0.2, down_after: 2, up_after: 1}}
"""


def test_proxy_health_is_logged_and_shown_by_the_api(tmp_path: Path) -> None:
    working = Proxy("trunk_proxy.xml", tmp_path)
    working.start()
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # takes OPTIONS, never answers
    silent.bind(("127.0.0.1", 0))
    silent_port = silent.getsockname()[1]
    silent_uri = f"sip:127.0.0.1:{silent_port}"
    revived = Proxy("trunk_proxy.xml", tmp_path, port=silent_port)
    token = TokenStore.load(tmp_path / "tokens.json").create("admin")
    server = start_server(tmp_path, TRUNK.format(first=silent_uri, second=working.uri, interval=0.3))
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


def test_a_referred_call_to_the_trunk_fails_over_from_a_503_proxy(tmp_path: Path) -> None:
    busy, working = Proxy("trunk_proxy_503.xml", tmp_path), Proxy("trunk_proxy.xml", tmp_path)
    busy.start()
    working.start()
    config = tmp_path / "voicebot.yaml"
    write_config(config, extra=TRUNK.format(first=busy.uri, second=working.uri, interval=60))
    text = config.read_text()  # allow transfers to the trunk's numbers
    config.write_text(text.replace('allowed_targets: ["sip:agent@127.0.0.1:*"]',
                                   'allowed_targets: ["sip:agent@127.0.0.1:*", "sip:*@carrier.example"]'))
    server = launch_server(config, tmp_path)
    try:
        targets = tmp_path / "target.csv"
        targets.write_text("SEQUENTIAL\nsip:+15550100@carrier.example;\n")
        result = run_sipp([f"{server.host}:{server.port}", "-sf", str(SCENARIOS / "refer_accepted.xml"), "-m", "1",
                           "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp",
                           str(free_media_port()), "-inf", str(targets)], tmp_path)
        assert result.returncode == 0, result.stderr  # the final NOTIFY said 200: the referred call was answered
        failover = server.wait_for_match("trunk proxy failed the call; trying the next", proxy=busy.uri)
        assert failover["status"] == 503 and failover["next"] == working.uri
        ended = server.wait_for("call ended", count=2)  # the caller's call and the referred leg (To is masked)
        referred = [r for r in ended if "sip:1000@" not in r["to"]]
        assert len(referred) == 1
        assert referred[0]["outcome"] == "completed"
    finally:
        stop_server(server)
        busy.stop()
        working.stop()
