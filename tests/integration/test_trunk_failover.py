"""A trunk with two proxies, each a real sipp UAS on loopback: OPTIONS checks mark a proxy down when it stops
answering and up when it answers again, and the dialer's INVITE goes to the first healthy proxy, failing over
to the next on 503 or on silence."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.integration.sipp_proxy import Proxy
from tests.integration.support import free_port_range
from voicebot.handoff.dialer import DialFailed, OutboundDialer
from voicebot.rtp.ports import PortAllocator
from voicebot.sip.optionsping import HealthSettings, OptionsMonitor
from voicebot.sip.proxyhealth import ProxyState, TrunkProxies, TrunkRoutes
from voicebot.sip.transport import EgressPolicy
from voicebot.sip.ua import UserAgent

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(90)]

LOOPBACK = EgressPolicy(["127.0.0.0/8", "::1/128"])
TARGET = "sip:+15550100@carrier.example"


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Callable[[str], Proxy]]:
    """Make a (not yet started) carrier proxy playing a scenario; every one made is stopped after the test."""
    made: list[Proxy] = []

    def make(scenario: str) -> Proxy:
        made.append(Proxy(scenario, tmp_path))
        return made[-1]

    yield make
    for each in made:
        each.stop()


@pytest_asyncio.fixture
async def ua() -> AsyncIterator[UserAgent]:
    agent = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
    await agent.start()
    yield agent
    await agent.stop()


def carrier(uris: list[str], **settings: Any) -> TrunkProxies:
    """The test trunk ("carrier", for carrier.example) over ``uris`` in that order."""
    return TrunkProxies("carrier", "carrier.example", uris, **settings)


def make_dialer(ua: UserAgent, trunk: TrunkProxies) -> OutboundDialer:
    start, end = free_port_range(20)
    return OutboundDialer(ua, PortAllocator(start, end), media_host="127.0.0.1", dtmf_payload_type=101,
                          egress=LOOPBACK, routes=TrunkRoutes([trunk]))


async def answering(monitor: OptionsMonitor, uri: str, attempts: int = 100) -> None:
    """Wait until ``uri`` answers an OPTIONS (sipp has bound its port): each try waits for the reply itself."""
    for _ in range(attempts):
        status, _ = await monitor.ping(uri, 0.2)
        if status is not None:
            return
    raise AssertionError(f"{uri} never answered OPTIONS")


async def running(ua: UserAgent, *members: Proxy) -> list[str]:
    """Start each proxy and wait until each answers OPTIONS; their URIs, in order (a trunk's proxy list)."""
    probe = OptionsMonitor(ua, TrunkRoutes(), {})
    for member in members:
        member.start()
    for member in members:
        await answering(probe, member.uri)
    return [member.uri for member in members]


def failovers(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int]]:
    """(proxy, status) of each "trunk proxy failed the call" the dialer logged."""
    return [(r.fields["proxy"], r.fields["status"]) for r in caplog.records  # type: ignore[attr-defined]
            if r.getMessage().startswith("trunk proxy failed the call")]


async def test_invite_fails_over_from_a_503_proxy_to_the_next(ua: UserAgent, proxy: Callable[[str], Proxy],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    busy, ok = proxy("trunk_proxy_503.xml"), proxy("trunk_proxy.xml")
    trunk = carrier(await running(ua, busy, ok))
    with caplog.at_level(logging.INFO, logger="voicebot.handoff.dialer"):
        leg = await make_dialer(ua, trunk).dial(TARGET, [], timeout_s=20)
    try:
        assert leg.call.dialog is not None
        assert leg.call.dialog.remote_target == f"sip:proxy@127.0.0.1:{ok.port}"
        assert failovers(caplog) == [(busy.uri, 503)]
    finally:
        await leg.hangup()
        await leg.close()


async def test_invite_fails_over_from_a_silent_proxy(ua: UserAgent, proxy: Callable[[str], Proxy]) -> None:
    ok = proxy("trunk_proxy.xml")
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a host that takes packets and never answers
    silent.bind(("127.0.0.1", 0))
    try:
        dead = f"sip:127.0.0.1:{silent.getsockname()[1]}"
        trunk = carrier([dead, *await running(ua, ok)], invite_timeout_s=0.5)
        leg = await make_dialer(ua, trunk).dial(TARGET, [], timeout_s=20)
        assert leg.call.dialog is not None and leg.call.dialog.remote_target.endswith(f":{ok.port}")
        assert b"INVITE sip:+15550100@carrier.example" in silent.recv(65535)  # it was tried first
        await leg.hangup()
        await leg.close()
    finally:
        silent.close()


async def test_all_proxies_refusing_fails_the_dial(ua: UserAgent, proxy: Callable[[str], Proxy]) -> None:
    trunk = carrier(await running(ua, proxy("trunk_proxy_503.xml")))
    with pytest.raises(DialFailed) as failed:
        await make_dialer(ua, trunk).dial(TARGET, [], timeout_s=20)
    assert failed.value.status == 503


async def test_a_callee_that_rang_out_is_not_dialled_again_via_the_next_proxy(
        ua: UserAgent, proxy: Callable[[str], Proxy], caplog: pytest.LogCaptureFixture) -> None:
    ringing, ok = proxy("trunk_proxy_no_answer.xml"), proxy("trunk_proxy.xml")
    trunk = carrier(await running(ua, ringing, ok))
    with caplog.at_level(logging.INFO, logger="voicebot.handoff.dialer"), pytest.raises(DialFailed) as failed:
        await make_dialer(ua, trunk).dial(TARGET, [], timeout_s=20)
    assert failed.value.status == 408  # 180 then 408: the callee did not answer; ringing it again would be wrong
    assert not [r for r in caplog.records if "trying the next" in r.getMessage()]


async def test_a_408_after_only_100_trying_fails_over_to_the_next_proxy(
        ua: UserAgent, proxy: Callable[[str], Proxy], caplog: pytest.LogCaptureFixture) -> None:
    dead_hop, ok = proxy("trunk_proxy_trying_408.xml"), proxy("trunk_proxy.xml")
    trunk = carrier(await running(ua, dead_hop, ok))
    with caplog.at_level(logging.INFO, logger="voicebot.handoff.dialer"):
        leg = await make_dialer(ua, trunk).dial(TARGET, [], timeout_s=20)
    try:  # a 100 Trying is the proxy working, not the callee ringing: its 408 is a dead next hop
        assert leg.call.dialog is not None and leg.call.dialog.remote_target.endswith(f":{ok.port}")
        assert failovers(caplog) == [(dead_hop.uri, 408)]
    finally:
        await leg.hangup()
        await leg.close()


async def test_options_checks_flip_health_and_the_dialer_skips_a_down_proxy(
        ua: UserAgent, proxy: Callable[[str], Proxy], caplog: pytest.LogCaptureFixture) -> None:
    first, second = proxy("trunk_proxy.xml"), proxy("trunk_proxy.xml")
    trunk = carrier(await running(ua, first, second), down_after=2, up_after=1)
    changes: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
    trunk.listeners.append(lambda _name, proxy: changes.put_nowait((proxy.uri, proxy.up)))
    routes = TrunkRoutes([trunk])
    monitor = OptionsMonitor(ua, routes, {"carrier": HealthSettings(interval_s=0.2, timeout_s=0.15)})
    with caplog.at_level(logging.INFO):
        monitor.start()
        try:
            first.stop()
            assert await asyncio.wait_for(changes.get(), 10) == (first.uri, False)
            assert trunk.candidates() == [second.uri]
            assert "trunk proxy down" in [r.getMessage() for r in caplog.records]
            assert 'voicebot_trunk_proxy_up{trunk="carrier",proxy="%s"} 0' % first.uri in routes.prometheus()

            leg = await make_dialer(ua, trunk).dial(TARGET, [], timeout_s=20)
            assert leg.call.dialog is not None and leg.call.dialog.remote_target.endswith(f":{second.port}")
            await leg.hangup()
            await leg.close()

            first.start()
            assert await asyncio.wait_for(changes.get(), 10) == (first.uri, True)
            assert trunk.candidates() == [first.uri, second.uri]
            assert "trunk proxy up" in [r.getMessage() for r in caplog.records]
            state: ProxyState = trunk.state(first.uri)
            assert state.last_result.startswith("200") and state.failures == 0
        finally:
            await monitor.stop()
