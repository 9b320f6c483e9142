"""A browser agent's answer reaching a node that does not hold the call is forwarded to the owner's advertised URL.

Two ACD services (n1, n2) share one store, each with its real HTTP app on loopback; n2 holds the caller, so the
offer goes to the agent's page and the page answers through n1. Only registry URLs are used, and every failure
(owner not live, no URL, refused connection, no reply) is a 502 that names the node and the reason.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCConfiguration, RTCPeerConnection
from pydantic import ValidationError

from tests.api.conftest import bearer
from voicebot.api.app import create_app
from voicebot.api.forward import AnswerForwarder, advertised_url, check_advertise_url
from voicebot.handoff.browser import BrowserAgentLegs, _Ringing, add_browser_agent_routes
from voicebot.config import ApiConfig
from voicebot.queues.service import AcdService
from voicebot.queues.store import MemoryStore

pytestmark = [pytest.mark.timeout(30)]

OFFER_SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


@dataclass
class Cluster:
    store: MemoryStore
    n1: TestClient  # the node the agent's page talks to
    n2_url: str  # where the node holding the caller serves its API
    assignment: str
    owner_legs: BrowserAgentLegs


@pytest_asyncio.fixture
async def cluster(service: AcdService, tokens, clock) -> AsyncIterator[Cluster]:
    store = service.store
    assert isinstance(store, MemoryStore)
    owner = AcdService(store, service.agents_config, service.queues_config, node="n2", clock=clock)
    clients = []
    legs_by_node = {}
    for node in (service, owner):
        app = create_app(node, tokens[0], clock=clock)
        legs = BrowserAgentLegs(node, ring_timeout_s=5)
        legs.forwarder = AnswerForwarder(store.node_api_url, node.node, timeout_s=1.0)
        add_browser_agent_routes(app, legs)
        legs_by_node[node.node] = legs
        clients.append(TestClient(TestServer(app, host="127.0.0.1")))
    n1, n2 = clients
    async with n1, n2:
        await service.set_agent_state("a1", "available")
        await owner.enqueue("call-9", "cards", ["lang:en-US"])
        assignment = next(iter((await service.snapshot()).assignments.values()))
        assert (assignment.node, assignment.agent_id) == ("n2", "a1")
        yield Cluster(store, n1, f"http://127.0.0.1:{n2.port}", assignment.id, legs_by_node["n2"])
        for legs in legs_by_node.values():
            legs.close()


def answer_body(assignment: str, **extra: str) -> dict[str, str]:
    return {"assignment": assignment, "type": "offer", "sdp": OFFER_SDP, **extra}


@pytest.mark.asyncio
async def test_answer_is_forwarded_to_the_owning_node_with_the_agents_token(cluster, tokens) -> None:
    await cluster.store.heartbeat("n2", 1.0, 30, cluster.n2_url)
    ringing = _Ringing(cluster.assignment, "a1", "call-9")  # n2 rings a1 (what BrowserAgentLegs.ring registers)
    cluster.owner_legs._ringing[cluster.assignment] = ringing  # noqa: SLF001
    page = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    page.addTransceiver("audio", direction="sendrecv")
    await page.setLocalDescription(await page.createOffer())
    try:
        # A URL in the body is ignored: only the registry says where a node is (no SSRF).
        body = {"assignment": cluster.assignment, "type": "offer", "sdp": page.localDescription.sdp,
                "url": "http://127.0.0.1:9/", "node": "n1"}
        response = await cluster.n1.post("/agents/a1/answer", headers=bearer(tokens[1]["a1"]), json=body)
        reply = await response.json()
        assert response.status == 200, reply
        assert reply["type"] == "answer" and reply["sdp"].startswith("v=0") and reply["leg"] == "call-9~agent-a1"
        assert ringing.answered.done() and ringing.answered.result().call_id == reply["leg"]  # n2 answered
    finally:
        if ringing.answered.done() and not ringing.answered.cancelled():
            await ringing.answered.result().close()
        await page.close()
    direct = await cluster.n1.post("/agents/a2/answer", headers=bearer(tokens[1]["a1"]),
                                   json=answer_body(cluster.assignment))
    assert direct.status == 403  # another agent's calls: refused before any forwarding


@pytest.mark.asyncio
async def test_owner_not_live_or_without_url_is_a_clear_502(cluster, tokens) -> None:
    response = await cluster.n1.post("/agents/a1/answer", headers=bearer(tokens[1]["a1"]),
                                     json=answer_body(cluster.assignment))
    body = await response.json()
    assert response.status == 502 and body["node"] == "n2"
    assert "'n2'" in body["error"] and "not live or advertises no API URL" in body["error"]
    await cluster.store.heartbeat("n2", 1.0, 30)  # live, but no URL advertised
    response = await cluster.n1.post("/agents/a1/answer", headers=bearer(tokens[1]["a1"]),
                                     json=answer_body(cluster.assignment))
    assert response.status == 502 and "advertises no API URL" in (await response.json())["error"]


@pytest.mark.asyncio
async def test_unreachable_or_silent_owner_is_a_502_not_a_hang(cluster, tokens) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    await cluster.store.heartbeat("n2", 1.0, 30, f"http://127.0.0.1:{closed}")
    response = await cluster.n1.post("/agents/a1/answer", headers=bearer(tokens[1]["a1"]),
                                     json=answer_body(cluster.assignment))
    assert response.status == 502 and "unreachable" in (await response.json())["error"]

    async def silent(_request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/agents/{agent}/answer", silent)
    async with TestServer(app, host="127.0.0.1") as server:
        await cluster.store.heartbeat("n2", 1.0, 30, f"http://127.0.0.1:{server.port}")
        response = await cluster.n1.post("/agents/a1/answer", headers=bearer(tokens[1]["a1"]),
                                         json=answer_body(cluster.assignment))
        assert response.status == 502 and "did not answer within 1 s" in (await response.json())["error"]


@pytest.mark.asyncio
async def test_a_forwarded_answer_is_never_forwarded_again(cluster, tokens) -> None:
    await cluster.store.heartbeat("n2", 1.0, 30, "http://127.0.0.1:9")  # forwarding there would give 502
    response = await cluster.n1.post("/agents/a1/answer", json=answer_body(cluster.assignment),
                                     headers={**bearer(tokens[1]["a1"]), "X-Voicebot-Forwarded-By": "n2"})
    assert response.status == 404  # answered here (nothing rings on n1), not sent on to n2


def test_advertise_url_is_validated() -> None:
    assert ApiConfig(advertise_url="http://10.0.0.5:8080/").advertise_url == "http://10.0.0.5:8080"
    assert ApiConfig().advertise_url is None
    for bad in ("ftp://10.0.0.5", "10.0.0.5:8080", "http://0.0.0.0:8080", "http://u:p@host:1",
                "http://host:1?x=1", "http://host:99999"):
        with pytest.raises(ValidationError):
            ApiConfig(advertise_url=bad)
    assert check_advertise_url("https://voicebot-b.internal") == "https://voicebot-b.internal"


def test_default_advertised_url_is_the_bound_address() -> None:
    assert advertised_url("127.0.0.1", 8080) == "http://127.0.0.1:8080"
    assert advertised_url("0.0.0.0", 8080, "10.0.0.5") == "http://10.0.0.5:8080"
    assert advertised_url("::", 8080) == "http://[::1]:8080"
    assert advertised_url("fd00::5", 81) == "http://[fd00::5]:81"
