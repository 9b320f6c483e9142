"""A trunk with two proxies, each a real sipp UAS on loopback: OPTIONS checks mark a proxy down when it stops
answering and up when it answers again, and the dialer's INVITE goes to the first healthy proxy, failing over
to the next on 503 or on silence."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

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
def proxies(tmp_path: Path) -> Iterator[dict[str, Proxy]]:
    made = {"ok": Proxy("trunk_proxy.xml", tmp_path), "busy": Proxy("trunk_proxy_503.xml", tmp_path)}
    yield made
    for proxy in made.values():
        proxy.stop()


@pytest_asyncio.fixture
async def ua() -> AsyncIterator[UserAgent]:
    agent = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
    await agent.start()
    yield agent
    await agent.stop()


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


async def test_invite_fails_over_from_a_503_proxy_to_the_next(ua: UserAgent, proxies: dict[str, Proxy],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    busy, ok = proxies["busy"], proxies["ok"]
    busy.start()
    ok.start()
    trunk = TrunkProxies("carrier", "carrier.example", [busy.uri, ok.uri])
    probe = OptionsMonitor(ua, TrunkRoutes(), {})
    await answering(probe, busy.uri)
    await answering(probe, ok.uri)
    with caplog.at_level(logging.INFO, logger="voicebot.handoff.dialer"):
        leg = await make_dialer(ua, trunk).dial(TARGET, [], timeout_s=20)
    try:
        assert leg.call.dialog is not None
        assert leg.call.dialog.remote_target == f"sip:proxy@127.0.0.1:{ok.port}"
        failover = [r for r in caplog.records if r.getMessage().startswith("trunk proxy failed the call")]
        assert [(r.fields["proxy"], r.fields["status"]) for r in failover] == [(busy.uri, 503)]  # type: ignore[attr-defined]
    finally:
        await leg.hangup()
        await leg.close()


async def test_invite_fails_over_from_a_silent_proxy(ua: UserAgent, proxies: dict[str, Proxy]) -> None:
    ok = proxies["ok"]
    ok.start()
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a host that takes packets and never answers
    silent.bind(("127.0.0.1", 0))
    try:
        dead = f"sip:127.0.0.1:{silent.getsockname()[1]}"
        trunk = TrunkProxies("carrier", "carrier.example", [dead, ok.uri], invite_timeout_s=0.5)
        await answering(OptionsMonitor(ua, TrunkRoutes(), {}), ok.uri)
        leg = await make_dialer(ua, trunk).dial(TARGET, [], timeout_s=20)
        assert leg.call.dialog is not None and leg.call.dialog.remote_target.endswith(f":{ok.port}")
        assert b"INVITE sip:+15550100@carrier.example" in silent.recv(65535)  # it was tried first
        await leg.hangup()
        await leg.close()
    finally:
        silent.close()


async def test_all_proxies_refusing_fails_the_dial(ua: UserAgent, proxies: dict[str, Proxy]) -> None:
    busy = proxies["busy"]
    busy.start()
    await answering(OptionsMonitor(ua, TrunkRoutes(), {}), busy.uri)
    trunk = TrunkProxies("carrier", "carrier.example", [busy.uri])
    with pytest.raises(DialFailed) as failed:
        await make_dialer(ua, trunk).dial(TARGET, [], timeout_s=20)
    assert failed.value.status == 503


async def test_a_callee_that_rang_out_is_not_dialled_again_via_the_next_proxy(
        ua: UserAgent, proxies: dict[str, Proxy], caplog: pytest.LogCaptureFixture) -> None:
    ringing, ok = Proxy("trunk_proxy_no_answer.xml", proxies["ok"].cwd), proxies["ok"]
    proxies["ringing"] = ringing
    ringing.start()
    ok.start()
    probe = OptionsMonitor(ua, TrunkRoutes(), {})
    await answering(probe, ringing.uri)
    await answering(probe, ok.uri)
    trunk = TrunkProxies("carrier", "carrier.example", [ringing.uri, ok.uri])
    with caplog.at_level(logging.INFO, logger="voicebot.handoff.dialer"), pytest.raises(DialFailed) as failed:
        await make_dialer(ua, trunk).dial(TARGET, [], timeout_s=20)
    assert failed.value.status == 408  # 180 then 408: the callee did not answer; ringing it again would be wrong
    assert not [r for r in caplog.records if "trying the next" in r.getMessage()]


async def test_a_408_after_only_100_trying_fails_over_to_the_next_proxy(
        ua: UserAgent, proxies: dict[str, Proxy], caplog: pytest.LogCaptureFixture) -> None:
    dead_hop, ok = Proxy("trunk_proxy_trying_408.xml", proxies["ok"].cwd), proxies["ok"]
    proxies["dead_hop"] = dead_hop
    dead_hop.start()
    ok.start()
    probe = OptionsMonitor(ua, TrunkRoutes(), {})
    await answering(probe, dead_hop.uri)
    await answering(probe, ok.uri)
    trunk = TrunkProxies("carrier", "carrier.example", [dead_hop.uri, ok.uri])
    with caplog.at_level(logging.INFO, logger="voicebot.handoff.dialer"):
        leg = await make_dialer(ua, trunk).dial(TARGET, [], timeout_s=20)
    try:  # a 100 Trying is the proxy working, not the callee ringing: its 408 is a dead next hop
        assert leg.call.dialog is not None and leg.call.dialog.remote_target.endswith(f":{ok.port}")
        failover = [r for r in caplog.records if r.getMessage().startswith("trunk proxy failed the call")]
        assert [(r.fields["proxy"], r.fields["status"]) for r in failover] == [(dead_hop.uri, 408)]  # type: ignore[attr-defined]
    finally:
        await leg.hangup()
        await leg.close()


async def test_options_checks_flip_health_and_the_dialer_skips_a_down_proxy(
        ua: UserAgent, proxies: dict[str, Proxy], caplog: pytest.LogCaptureFixture) -> None:
    first, second = proxies["ok"], Proxy("trunk_proxy.xml", proxies["ok"].cwd)
    proxies["second"] = second
    first.start()
    second.start()
    trunk = TrunkProxies("carrier", "carrier.example", [first.uri, second.uri], down_after=2, up_after=1)
    changes: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
    trunk.listeners.append(lambda _name, proxy: changes.put_nowait((proxy.uri, proxy.up)))
    routes = TrunkRoutes([trunk])
    monitor = OptionsMonitor(ua, routes, {"carrier": HealthSettings(interval_s=0.2, timeout_s=0.15)})
    await answering(monitor, first.uri)
    await answering(monitor, second.uri)
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
