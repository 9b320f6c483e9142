"""Handoff bad input over real SIP on loopback: agent unreachable, agent busy, caller hangs up while the agent rings,
two ACD nodes racing for one agent. Each case checks that no call and no ACD record is lost.

In-process: a real UserAgent answers the caller's INVITE with an RtpStream (like server._on_invite) and hands the
answered call to a real HandoffManager + AcdService(MemoryStore); agents are sipp UAS phones (or nothing at all).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

import pytest

from tests.integration.support import SCENARIOS, free_media_port, free_udp_port, free_udp_ports, require_tool
from voicebot.channels.sip import SipChannel
from voicebot.handoff import CallQueue, HandoffManager
from voicebot.queues.models import load_agents, load_queues
from voicebot.queues.service import AcdService, AssignmentOffered, ServiceEvent
from voicebot.queues.state import AcdState
from voicebot.queues.store import MemoryStore
from voicebot.rtp.ports import PortAllocator
from voicebot.rtp.stream import RtpStream
from voicebot.sip.call import CallState, SipCall
from voicebot.sip.sdp import build_offer, negotiate, parse_sdp
from voicebot.sip.transport import EgressPolicy
from voicebot.sip.ua import UserAgent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

LOOPBACK = EgressPolicy(["127.0.0.0/8"])


# ---------------------------------------------------------------------------------------------------- helpers
def sipp_agent(scenario: str, port: int, cwd: Path, name: str, calls: int = 1) -> subprocess.Popen:
    return subprocess.Popen(["sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port), "-mi",
                             "127.0.0.1", "-mp", str(free_media_port()), "-m", str(calls), "-nostdin", "-timeout",
                             "40s", "-timeout_error", "-trace_err", "-error_file", str(cwd / f"{name}_errors.log")],
                            cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def sipp_outcome(proc: subprocess.Popen, cwd: Path, name: str, timeout: float = 20) -> tuple[int, str]:
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    log = cwd / f"{name}_errors.log"
    return code, log.read_text(errors="ignore")[-2000:] if log.exists() else ""


def write_config(cwd: Path, agents: dict[str, int]) -> None:
    """agents: id -> SIP port on loopback; listed in this order. One queue "support", wrap-up 0."""
    lines = ["agents:"]
    for agent_id, port in agents.items():
        lines += [f"  - id: {agent_id}", f"    name: Agent {agent_id}", f"    sip_uri: sip:{agent_id}@127.0.0.1:{port}",
                  "    skills: {billing: 5}", "    languages: [en-US]", "    wrap_up_s: 0"]
    (cwd / "agents.yaml").write_text("\n".join(lines) + "\n")
    (cwd / "queues.yaml").write_text("queues:\n  - name: support\n    max_wait_s: 600\n")


def port_allocator() -> PortAllocator:
    start = free_udp_ports(1, span=40, even=True)[0]
    return PortAllocator(start, start + 40)


@dataclass
class Node:
    """One voicebot node in-process: its SIP UA answers callers; its HandoffManager rings agents."""

    ua: UserAgent
    service: AcdService
    handoff: HandoffManager
    ports: PortAllocator
    legs: asyncio.Queue[SipChannel] = field(default_factory=asyncio.Queue)
    offers: list[str] = field(default_factory=list)  # assignment ids seen in AssignmentOffered events

    @property
    def uri(self) -> str:
        return f"sip:1000@127.0.0.1:{self.ua.port}"

    async def answer(self, call: SipCall) -> None:
        """Like server._on_invite: negotiate, open RTP, answer; the leg lives until the caller hangs up."""
        offer = parse_sdp(call.remote_sdp)
        probe = negotiate(offer, "127.0.0.1", 9)
        stream = await RtpStream.open("127.0.0.1", self.ports, probe.codec.name, probe.codec.payload_type,
                                      probe.dtmf_payload_type)
        try:
            negotiated = negotiate(offer, "127.0.0.1", stream.local_port)
            stream.set_remote(negotiated.remote_host, negotiated.remote_port)
            if await call.answer(negotiated.answer.encode()):
                await self.legs.put(SipChannel(call, stream))
                await call.ended.wait()
        finally:
            await stream.close()

    def on_event(self, event: ServiceEvent) -> None:
        if isinstance(event, AssignmentOffered):
            self.offers.append(event.assignment.id)


@asynccontextmanager
async def running_node(cwd: Path, store: MemoryStore, name: str, ring_timeout_s: float) -> AsyncIterator[Node]:
    ua = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
    await ua.start()
    service = AcdService(store, load_agents(cwd / "agents.yaml"), load_queues(cwd / "queues.yaml"), node=name,
                         poll_s=0.1)
    ports = port_allocator()
    handoff = HandoffManager(ua, ports, service, media_host="127.0.0.1", dtmf_payload_type=101, egress=LOOPBACK,
                             ring_timeout_s=ring_timeout_s, announce_every_s=60)
    node = Node(ua, service, handoff, ports)
    ua.accept_calls(node.answer)
    unsubscribe = service.subscribe(node.on_event)
    handoff.start()
    try:
        yield node
    finally:
        unsubscribe()
        await handoff.close()
        await stop_ua(ua)


async def stop_ua(ua: UserAgent) -> None:
    """ua.stop(), bounded: hanging up a leg that never got a response CANCELs it and waits out Timer F (32 s)."""
    try:
        await asyncio.wait_for(ua.stop(), 5)
    except asyncio.TimeoutError:
        if ua.transport is not None:
            ua.transport.close()


@dataclass
class Caller:
    """The customer's phone (a separate UA) and, on the voicebot side, the queued call."""

    phone: SipCall
    phone_stream: RtpStream
    leg: SipChannel
    waiter: CallQueue
    watcher: asyncio.Task[None]

    async def hang_up(self) -> None:
        await self.phone.hangup("customer hung up")
        await asyncio.wait_for(self.leg.call.ended.wait(), 5)
        await asyncio.wait_for(asyncio.shield(self.watcher), 10)
        await self.phone_stream.close()


async def queue_caller(phone_ua: UserAgent, node: Node, ports: PortAllocator, number: str) -> Caller:
    """Place a real call to the node, and queue the answered call like the dialplan's enqueue action does."""
    stream = await RtpStream.open("127.0.0.1", ports, "PCMU", 0, 101)
    offer = build_offer("127.0.0.1", stream.local_port, ["PCMU", "PCMA"], 101)
    phone = await asyncio.wait_for(phone_ua.invite(node.uri, sdp=offer.encode()), 10)
    leg = await asyncio.wait_for(node.legs.get(), 5)
    waiter = await node.handoff.join(leg, "support", ("billing",), 0, {"intent": "billing"},
                                     [{"who": "caller", "text": "an agent please", "t": 1.0}], number, "en-US")

    async def session_end() -> None:
        # What the call session does when the caller hangs up before an agent answered (conversation.py).
        await leg.call.ended.wait()
        if not waiter.done and not waiter.bridged.is_set():
            await node.handoff.leave(waiter, "abandon")

    return Caller(phone, stream, leg, waiter, asyncio.ensure_future(session_end()))


async def wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def connected_to(service: AcdService, call_id: str) -> str | None:
    state = await service.snapshot()
    for assignment in state.assignments.values():
        if assignment.call_id == call_id and assignment.state == "connected":
            return assignment.agent_id
    return None


def assert_idle(state: AcdState) -> None:
    """No caller left waiting, no agent still reserved or busy, no dangling assignment."""
    assert state.entries == {}
    assert state.assignments == {}
    assert {a.agent_id: (a.state, a.assignment_id, a.call_id) for a in state.agents.values()} == {
        a: ("available", None, None) for a in state.agents}


@pytest.fixture
def phone_ua_ports() -> PortAllocator:
    return port_allocator()


# ---------------------------------------------------------------------------------- 1 and 2: agent fails, next one
def run_failover(tmp_path: Path, failing_scenario: str | None) -> None:
    """a_bad (longest idle, so rung first) fails; the caller goes back to the head and a_good answers."""
    require_tool("sipp")
    bad_port, good_port = free_udp_ports(2)
    write_config(tmp_path, {"a_bad": bad_port, "a_good": good_port})
    bad = sipp_agent(failing_scenario, bad_port, tmp_path, "bad") if failing_scenario else None
    good = sipp_agent("agent_answers.xml", good_port, tmp_path, "good")
    time.sleep(0.3)

    async def scenario() -> dict:
        phone_ua = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
        await phone_ua.start()
        try:
            async with running_node(tmp_path, MemoryStore(), "n1", ring_timeout_s=3) as node:
                await node.service.set_agent_state("a_bad", "available")
                await asyncio.sleep(0.05)
                await node.service.set_agent_state("a_good", "available")
                caller = await queue_caller(phone_ua, node, port_allocator(), "+15550101")
                call_id = caller.leg.call.call_id
                await wait_until(lambda: connected_to(node.service, call_id), 15, "a_good to answer")
                during = await node.service.snapshot()
                phone_state = caller.phone.state
                await caller.hang_up()

                async def ended() -> bool:
                    return await connected_to(node.service, call_id) is None

                await wait_until(ended, 5, "the call to end")
                after = await node.service.snapshot()
                return {"call_id": call_id, "during": during, "after": after, "offers": list(node.offers),
                        "phone_state": phone_state}
        finally:
            await stop_ua(phone_ua)

    finished = False
    try:
        result = asyncio.run(scenario())
        finished = True
    finally:  # a failed scenario stops the agents at once instead of waiting for their own timeouts
        wait_s = 20 if finished else 0
        outcomes = {"good": sipp_outcome(good, tmp_path, "good", wait_s)}
        if bad is not None:
            outcomes["bad"] = sipp_outcome(bad, tmp_path, "bad", wait_s)
    assert outcomes["good"][0] == 0, outcomes["good"][1]
    if bad is not None:
        assert outcomes["bad"][0] == 0, outcomes["bad"][1]
    call_id, during, after = result["call_id"], result["during"], result["after"]
    # The caller's own call stayed up while a_bad failed: never dropped.
    assert result["phone_state"] is CallState.CONFIRMED
    # Offered to a_bad first, then (back at the head, a_bad marked as tried) to a_good: two offers, same caller.
    assert result["offers"] == [f"{call_id}#1", f"{call_id}#2"]
    (assignment,) = during.assignments.values()
    assert (assignment.agent_id, assignment.state) == ("a_good", "connected")
    assert assignment.entry["tried_agents"] == ["a_bad"]
    assert during.agents["a_bad"].state == "available" and during.agents["a_bad"].no_answers == 1
    assert during.agents["a_good"].state == "busy"
    assert during.entries == {}
    # The record: one caller answered, none abandoned, the handled call counted; both agents free again.
    stats = after.stats["support"]
    assert (stats.answered, stats.abandoned, stats.handled) == (1, 0, 1)
    assert after.agents["a_good"].handled == 1
    assert_idle(after)


def test_unreachable_agent_caller_goes_back_to_head_and_next_agent_answers(tmp_path: Path) -> None:
    run_failover(tmp_path, None)  # nothing listens on a_bad's port: the INVITE is never answered


def test_busy_agent_caller_goes_back_to_head_and_next_agent_answers(tmp_path: Path) -> None:
    run_failover(tmp_path, "agent_busy_here.xml")


# -------------------------------------------------------------------- 3: caller hangs up while the agent rings
def run_hangup_while_ringing(tmp_path: Path, ring_timeout_s: float) -> dict:
    require_tool("sipp")
    agent_port = free_udp_port()
    write_config(tmp_path, {"a1": agent_port})
    agent = sipp_agent("agent_rings_until_cancel.xml", agent_port, tmp_path, "agent")
    time.sleep(0.3)

    async def scenario() -> dict:
        phone_ua = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
        await phone_ua.start()
        try:
            async with running_node(tmp_path, MemoryStore(), "n1", ring_timeout_s=ring_timeout_s) as node:
                await node.service.set_agent_state("a1", "available")
                caller = await queue_caller(phone_ua, node, port_allocator(), "+15550102")

                async def reserved() -> bool:
                    return (await node.service.snapshot()).agents["a1"].state == "reserved"

                await wait_until(reserved, 5, "a1 to be reserved")
                await asyncio.sleep(1.0)  # the agent's phone is ringing (180)
                await caller.hang_up()
                after_leave = await node.service.snapshot()
                # Let the ringing leg wind down (CANCEL at the latest at the ring timeout).
                await asyncio.sleep(min(ring_timeout_s, 10) + 1.0)
                settled = await node.service.snapshot()
                return {"after_leave": after_leave, "settled": settled, "offers": list(node.offers)}
        finally:
            await stop_ua(phone_ua)

    finished = False
    try:
        result = asyncio.run(scenario())
        finished = True
    finally:
        result_sipp = sipp_outcome(agent, tmp_path, "agent", 20 if finished else 0)
    result["sipp"] = result_sipp
    return result


def test_caller_hangs_up_while_agent_rings_frees_agent_and_counts_abandon(tmp_path: Path) -> None:
    result = run_hangup_while_ringing(tmp_path, ring_timeout_s=3)
    for state in (result["after_leave"], result["settled"]):
        stats = state.stats["support"]
        assert (stats.answered, stats.abandoned) == (0, 1)
        assert_idle(state)  # caller gone, agent available again, no assignment left behind
    assert len(result["offers"]) == 1  # nobody else to offer the agent to; the caller is not re-queued
    code, errors = result["sipp"]
    assert code == 0, f"agent's INVITE was not CANCELled (200 + 487): {errors}"


def test_caller_hangup_cancels_ringing_agent_promptly(tmp_path: Path) -> None:
    # Ring timeout (15 s) longer than the agent phone's 10 s CANCEL window: only the caller's hang-up can cancel.
    result = run_hangup_while_ringing(tmp_path, ring_timeout_s=15)
    code, errors = result["sipp"]
    assert code == 0, f"agent's INVITE was not CANCELled within 10 s of ringing: {errors}"


# ------------------------------------------------------------------------------ 4: two nodes racing for one agent
def test_two_nodes_racing_for_one_agent_assign_it_once_at_a_time(tmp_path: Path) -> None:
    require_tool("sipp")
    agent_port = free_udp_port()
    write_config(tmp_path, {"a1": agent_port})
    agent = sipp_agent("agent_answers.xml", agent_port, tmp_path, "agent", calls=2)
    time.sleep(0.3)

    async def scenario() -> dict:
        phone_ua = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
        await phone_ua.start()
        store = MemoryStore()
        violations: list[str] = []
        try:
            async with running_node(tmp_path, store, "node-a", 10) as node_a, \
                    running_node(tmp_path, store, "node-b", 10) as node_b:
                phone_ports = port_allocator()
                caller_a = await queue_caller(phone_ua, node_a, phone_ports, "+15550103")
                caller_b = await queue_caller(phone_ua, node_b, phone_ports, "+15550104")
                stop = asyncio.Event()

                async def monitor() -> None:
                    while not stop.is_set():
                        state = await store.load()
                        mine = [a.id for a in state.assignments.values() if a.agent_id == "a1"]
                        status = state.agents.get("a1")
                        if len(mine) > 1:
                            violations.append(f"a1 holds {mine}")
                        if status is not None and mine and status.assignment_id != mine[0]:
                            violations.append(f"a1 status {status.assignment_id} vs assignments {mine}")
                        waiting = set(state.entries) | {a.call_id for a in state.assignments.values()}
                        if stats_done(state) + len(waiting) != 2:
                            violations.append(f"caller lost: waiting {waiting}, stats {state.stats}")
                        await asyncio.sleep(0.01)

                watch = asyncio.ensure_future(monitor())
                # The agent becomes free (via node A) while both nodes' ACD loops step at once: a race for a1.
                await asyncio.gather(node_b.service.step(), node_a.service.set_agent_state("a1", "available"),
                                     node_b.service.step(), node_a.service.step())
                by_call = {caller_a.leg.call.call_id: (caller_a, node_a), caller_b.leg.call.call_id: (caller_b, node_b)}
                served: list[str] = []
                for _ in range(2):
                    async def someone_connected() -> bool:
                        state = await store.load()
                        return any(a.state == "connected" for a in state.assignments.values())

                    await wait_until(someone_connected, 15, "the agent to answer a caller")
                    state = await store.load()
                    (assignment,) = state.assignments.values()
                    assert state.agents["a1"].state == "busy"
                    served.append(assignment.node)
                    caller, _ = by_call[assignment.call_id]
                    await asyncio.sleep(0.3)
                    await caller.hang_up()

                    async def call_released(call_id: str = assignment.call_id) -> bool:
                        return all(a.call_id != call_id for a in (await store.load()).assignments.values())

                    await wait_until(call_released, 5, "the served call to be released")
                stop.set()
                await watch
                final = await store.load()
                offers_a, offers_b = list(node_a.offers), list(node_b.offers)
                return {"final": final, "served": served, "offers": (offers_a, offers_b),
                        "callers": set(by_call), "violations": violations}
        finally:
            await stop_ua(phone_ua)

    finished = False
    try:
        result = asyncio.run(scenario())
        finished = True
    finally:
        code, errors = sipp_outcome(agent, tmp_path, "agent", 20 if finished else 0)
    assert code == 0, errors
    assert result["violations"] == []
    assert sorted(result["served"]) == ["node-a", "node-b"]  # each node connected its own caller, one after the other
    # Both nodes saw the same two offers, one per caller, first offer each: nobody offered twice, nobody dropped.
    offers_a, offers_b = result["offers"]
    assert sorted(offers_a) == sorted(offers_b) == sorted(f"{cid}#1" for cid in result["callers"])
    final = result["final"]
    stats = final.stats["support"]
    assert (stats.answered, stats.abandoned, stats.handled) == (2, 0, 2)
    assert final.agents["a1"].handled == 2 and final.agents["a1"].no_answers == 0
    assert_idle(final)


def stats_done(state: AcdState) -> int:
    stats = state.stats.get("support")
    return 0 if stats is None else stats.handled + stats.abandoned
