"""Over real SIP: an agent phone that rejects every offer (486) stops holding the queue — after 3 consecutive
unanswered offers (agents.yaml max_no_answers, default) the ACD sets the agent not-ready, the caller's call stays
up and the caller keeps waiting for someone else instead of being re-offered to the same phone forever."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.integration.support import free_udp_port, require_tool
from tests.integration.test_handoff_failures import (
    LOOPBACK,
    port_allocator,
    queue_caller,
    running_node,
    sipp_agent,
    sipp_outcome,
    stop_ua,
    wait_until,
    write_config,
)
from voicebot.queues.service import AgentChanged, ServiceEvent
from voicebot.queues.store import MemoryStore
from voicebot.sip.call import CallState
from voicebot.sip.ua import UserAgent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_agent_whose_phone_rejects_every_offer_is_set_not_ready(tmp_path: Path) -> None:
    require_tool("sipp")
    agent_port = free_udp_port()
    write_config(tmp_path, {"a1": agent_port})
    busy_phone = sipp_agent("agent_busy_here.xml", agent_port, tmp_path, "busy", calls=3)
    time.sleep(0.3)

    async def scenario() -> dict:
        phone_ua = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
        await phone_ua.start()
        try:
            async with running_node(tmp_path, MemoryStore(), "n1", ring_timeout_s=5) as node:
                alerts: list[AgentChanged] = []

                def on_event(event: ServiceEvent) -> None:
                    if isinstance(event, AgentChanged) and event.reason == "no_answer":
                        alerts.append(event)

                node.service.subscribe(on_event)
                await node.service.set_agent_state("a1", "available")
                caller = await queue_caller(phone_ua, node, port_allocator(), "+15550103")

                async def not_ready() -> bool:
                    return (await node.service.snapshot()).agents["a1"].state == "offline"

                await wait_until(not_ready, 30, "a1 to be set not-ready")
                state = await node.service.snapshot()
                result = {"state": state, "offers": list(node.offers), "alerts": list(alerts),
                          "phone": caller.phone.state, "call_id": caller.leg.call.call_id}
                await caller.hang_up()
                return result
        finally:
            await stop_ua(phone_ua)

    finished = False
    try:
        result = asyncio.run(scenario())
        finished = True
    finally:
        code, errors = sipp_outcome(busy_phone, tmp_path, "busy", 20 if finished else 0)
    assert code == 0, errors  # the phone saw exactly its 3 offers and rejected each
    a1 = result["state"].agents["a1"]
    assert (a1.state, a1.not_ready_reason, a1.consecutive_no_answers) == ("offline", "no_answer", 3)
    assert len(result["offers"]) == 3
    assert [(e.agent_id, e.consecutive_no_answers) for e in result["alerts"]] == [("a1", 3)]
    assert list(result["state"].entries) == [result["call_id"]]  # the caller still waits, at the head
    assert result["state"].assignments == {}
    assert result["phone"] is CallState.CONFIRMED  # and is still on the line
