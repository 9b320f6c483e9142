"""The outbound trunks' proxies (voicebot.sip.proxyhealth) and their OPTIONS check cadence, from the config."""

from __future__ import annotations

from collections.abc import Iterable

from voicebot.config import TrunkConfig
from voicebot.sip.optionsping import HealthSettings
from voicebot.sip.proxyhealth import TrunkProxies, TrunkRoutes


def trunk_routes(trunks: Iterable[TrunkConfig]) -> tuple[TrunkRoutes, dict[str, HealthSettings]]:
    """Every trunk that lists proxies, and the check settings of those whose OPTIONS pings are on."""
    routes = TrunkRoutes()
    settings: dict[str, HealthSettings] = {}
    for trunk in trunks:
        if not trunk.proxies:
            continue
        health = trunk.health
        routes.add(TrunkProxies(trunk.name, trunk.domain, trunk.proxies, down_after=health.down_after,
                                up_after=health.up_after, invite_timeout_s=health.invite_timeout_s))
        if health.options:
            settings[trunk.name] = HealthSettings(interval_s=health.interval_s, timeout_s=health.timeout_s)
    return routes, settings
