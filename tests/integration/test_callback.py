"""Callback path end to end over SIP: a queued caller takes a callback; when an agent is free, voicebot rings the
agent (context headers), then dials the customer back and bridges them."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.support import SCENARIOS, free_media_port, free_udp_ports, require_tool, write_callback_agent
from voicebot.handoff import HandoffManager
from voicebot.queues.models import load_agents, load_queues
from voicebot.queues.service import AcdService
from voicebot.queues.store import MemoryStore
from voicebot.rtp.ports import PortAllocator
from voicebot.sip.transport import EgressPolicy
from voicebot.sip.ua import UserAgent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def sipp_uas(scenario: str, port: int, cwd: Path, name: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(["sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port), "-mi",
                             "127.0.0.1", "-mp", str(free_media_port()), "-m", "1", "-nostdin", "-timeout", "60s",
                             "-timeout_error", "-trace_err", "-error_file", str(cwd / f"{name}_errors.log"), *extra],
                            cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_callback_rings_agent_then_dials_customer_and_bridges(tmp_path: Path) -> None:
    require_tool("sipp")
    agent_port, customer_port = free_udp_ports(2)
    write_callback_agent(tmp_path, agent_port)
    (tmp_path / "queues.yaml").write_text("queues:\n  - name: support\n    max_wait_s: 600\n")
    agent = sipp_uas("agent_answers.xml", agent_port, tmp_path, "agent", "-rtp_echo")
    customer = sipp_uas("customer_answers_then_hangs_up.xml", customer_port, tmp_path, "customer")
    time.sleep(0.3)

    async def scenario() -> dict:
        ua = UserAgent("127.0.0.1", 0, egress=EgressPolicy(["127.0.0.0/8"]))
        await ua.start()
        service = AcdService(MemoryStore(), load_agents(tmp_path / "agents.yaml"),
                             load_queues(tmp_path / "queues.yaml"), node="n1", poll_s=0.1)
        start = free_udp_ports(1, span=40, even=True)[0]
        handoff = HandoffManager(ua, PortAllocator(start, start + 40), service, media_host="127.0.0.1",
                                 dtmf_payload_type=101, egress=EgressPolicy(["127.0.0.0/8"]), ring_timeout_s=10,
                                 callback_uri_template=f"sip:{{number}}@127.0.0.1:{customer_port}")
        handoff.start()
        try:
            # A caller waited with no agent staffed and chose a callback on +15550100.
            await service.enqueue("caller-7", "support", ("billing",), 0, "ctx_caller7")
            await service.request_callback("caller-7", "+15550100")
            await service.set_agent_state("a1", "available")  # an agent frees up: the callback is due
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                stats = (await service.snapshot()).stats["support"]
                if stats.callbacks_done:
                    break
                await asyncio.sleep(0.2)
            return {"done": stats.callbacks_done, "failed": stats.callbacks_failed}
        finally:
            await handoff.close()
            await ua.stop()

    result = asyncio.run(scenario())
    try:
        assert customer.wait(30) == 0, (tmp_path / "customer_errors.log").read_text(errors="ignore")
        assert agent.wait(30) == 0, (tmp_path / "agent_errors.log").read_text(errors="ignore")
    finally:
        for proc in (agent, customer):
            if proc.poll() is None:
                proc.kill()
    assert result == {"done": 1, "failed": 0}
