"""Trunk proxies and their OPTIONS health checks in the server config: parsed, and refused with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_config import single_error, write
from voicebot.config import load_server_config
from voicebot.handoff.trunk_routes import trunk_routes

TRUNK = """\
trunks:
  - name: carrier
    registrar: sip:carrier.example:5070
    register: false
    proxies:
      - sip:10.0.0.1
      - "sip:10.0.0.2:5080;transport=tcp"
"""


def test_proxies_and_health_settings_are_parsed(tmp_path: Path) -> None:
    config = load_server_config(write(tmp_path, TRUNK + "    health: {interval_s: 2, timeout_s: 1, down_after: 2}\n"))
    trunk = config.trunks[0]
    assert trunk.proxies == ["sip:10.0.0.1", "sip:10.0.0.2:5080;transport=tcp"]
    assert (trunk.health.interval_s, trunk.health.timeout_s, trunk.health.down_after) == (2, 1, 2)
    routes, settings = trunk_routes(config.trunks)
    proxies = routes.for_domain("carrier.example:5070")
    assert proxies is not None and proxies.candidates() == trunk.proxies and proxies.down_after == 2
    assert settings["carrier"].interval_s == 2


def test_health_checks_can_be_turned_off(tmp_path: Path) -> None:
    config = load_server_config(write(tmp_path, TRUNK + "    health: {options: false}\n"))
    routes, settings = trunk_routes(config.trunks)
    assert "carrier" in routes.trunks and settings == {}


def test_duplicate_proxy_points_at_the_second(tmp_path: Path) -> None:
    error = single_error(tmp_path, TRUNK + "      - sip:10.0.0.1\n")
    assert error.line == 8
    assert error.message == "trunks[0].proxies[2]: proxy 'sip:10.0.0.1' is listed twice"


def test_check_timeout_longer_than_interval_is_refused(tmp_path: Path) -> None:
    error = single_error(tmp_path, TRUNK + "    health:\n      interval_s: 1\n      timeout_s: 3\n")
    assert error.line == 10
    assert error.message.startswith("trunks[0].health.timeout_s: timeout_s (3) is longer than interval_s (1)")


def test_outbound_proxy_and_proxies_together_are_refused(tmp_path: Path) -> None:
    error = single_error(tmp_path, TRUNK + "    outbound_proxy: sip:10.0.0.9\n")
    assert error.line == 8
    assert "outbound_proxy and proxies are both set" in error.message


@pytest.mark.parametrize(("field", "value"), [("interval_s", "0"), ("down_after", "0"), ("proxies", "[tel:+1555]")])
def test_bad_values_are_located(tmp_path: Path, field: str, value: str) -> None:
    text = TRUNK.split("    proxies:")[0] + (f"    {field}: {value}\n" if field == "proxies"
                                              else f"    proxies: [sip:10.0.0.1]\n    health:\n      {field}: {value}\n")
    error = single_error(tmp_path, text)
    assert error.line == (5 if field == "proxies" else 7)
    assert field in error.message
