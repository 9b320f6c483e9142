"""Trunk proxy health (voicebot.sip.proxyhealth): K failures mark a proxy down, a success up; calls try the
healthy proxies in order."""

from __future__ import annotations

from voicebot.handoff.dialer import loose_route
from voicebot.sip.proxyhealth import ProxyState, TrunkProxies, TrunkRoutes, check_failed

A, B, C = "sip:10.0.0.1", "sip:10.0.0.2", "sip:10.0.0.3"


def test_down_after_k_consecutive_failures_and_up_after_a_success() -> None:
    trunk = TrunkProxies("carrier", "carrier.example", [A, B], down_after=3)
    changes: list[tuple[str, bool]] = []
    trunk.listeners.append(lambda _t, p: changes.append((p.uri, p.up)))
    assert not trunk.record(A, True, "timeout", 1.0)
    assert not trunk.record(A, True, "timeout", 2.0)
    assert not trunk.record(A, False, "200 OK", 3.0)  # a success resets the count
    assert not trunk.record(A, True, "timeout", 4.0) and not trunk.record(A, True, "503", 5.0)
    assert trunk.record(A, True, "timeout", 6.0)
    assert changes == [(A, False)] and trunk.state(A).changed_at == 6.0
    assert trunk.candidates() == [B]
    assert not trunk.record(A, True, "timeout", 7.0)  # already down: no second change
    assert trunk.record(A, False, "404 Not Found", 8.0)
    assert changes == [(A, False), (A, True)] and trunk.candidates() == [A, B]


def test_up_after_several_successes() -> None:
    trunk = TrunkProxies("carrier", "carrier.example", [A], down_after=1, up_after=2)
    trunk.record(A, True, "timeout", 1.0)
    assert not trunk.state(A).up
    assert not trunk.record(A, False, "200 OK", 2.0)
    assert trunk.record(A, False, "200 OK", 3.0) and trunk.state(A).up


def test_all_down_means_try_them_all_in_order() -> None:
    trunk = TrunkProxies("carrier", "carrier.example", [A, B, C], down_after=1)
    trunk.record(B, True, "timeout", 1.0)
    assert trunk.candidates() == [A, C]
    for uri in (A, C):
        trunk.record(uri, True, "timeout", 1.0)
    assert trunk.candidates() == [A, B, C]


def test_what_counts_as_a_failed_check() -> None:
    assert check_failed(None) and check_failed(408) and check_failed(503)
    assert not any(check_failed(s) for s in (200, 404, 405, 481, 500))


def test_routes_by_domain_snapshot_and_metrics() -> None:
    trunk = TrunkProxies("carrier", "Carrier.Example:5070", [A, B], down_after=1)
    routes = TrunkRoutes([trunk])
    assert routes.for_domain("carrier.example:5070") is trunk and routes.for_domain("carrier.example") is None
    trunk.record(A, True, "timeout", 1.0)
    snapshot = routes.snapshot()[0]
    assert snapshot["healthy"] == 1
    assert snapshot["proxies"] == [ProxyState(A, False, 1, 0, 1, "timeout", 1.0).as_dict(),
                                   ProxyState(B).as_dict()]
    text = routes.prometheus()
    assert f'voicebot_trunk_proxy_up{{trunk="carrier",proxy="{A}"}} 0' in text
    assert f'voicebot_trunk_proxy_up{{trunk="carrier",proxy="{B}"}} 1' in text
    assert f'voicebot_trunk_proxy_checks_total{{trunk="carrier",proxy="{A}"}} 1' in text
    assert TrunkRoutes().prometheus() == ""


def test_loose_route() -> None:
    assert loose_route("sip:10.0.0.1:5070") == "sip:10.0.0.1:5070;lr"
    assert loose_route("sip:p.example;transport=tcp") == "sip:p.example;transport=tcp;lr"
    assert loose_route("sip:p.example;lr") == "sip:p.example;lr"
