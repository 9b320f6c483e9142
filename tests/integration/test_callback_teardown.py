"""A followed callback's set-up and teardown (issue 19 review): what following it needs (the caller's language from
the call context, the dialplan from the call's record, read in a worker thread off the event loop) is read before
anyone is dialled; when the agent hangs up, the customer's leg ends before the live transcript settles (they are
not left on a dead line for up to 5 s), and the utterances still being recognised then still reach the record.

Real SIP peers on loopback (two PJSIP phones: the agent hangs up after a few seconds, the customer never does),
the real ACD, dialer, bridge, segmenter and LiveAsr; the recogniser answers only once the customer's phone says
its call was disconnected, so a transcript that waits before hanging the customer up times out and drops them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.support import REPO, free_udp_ports, write_callback_agent
from voicebot.handoff import HandoffManager
from voicebot.handoff.live_asr import LiveAsr
from voicebot.handoff.live_transcript import BridgedCall, LiveCall, LiveTranscripts, QueueFollow
from voicebot.queues.context import CallContextRecord
from voicebot.queues.models import load_agents, load_queues
from voicebot.queues.service import AcdService
from voicebot.queues.store import MemoryStore
from voicebot.rtp.ports import PortAllocator
from voicebot.sip.transport import EgressPolicy
from voicebot.sip.ua import UserAgent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PHONE = Path(__file__).resolve().parent / "pjsua_agent.py"
FIXTURES = REPO / "tests" / "audio_fixtures"


def phone(port: int, wav: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(PHONE), "--port", str(port), "--play", str(FIXTURES / wav),
                             "--timeout", "60", *extra], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def test_the_customer_is_hung_up_before_the_transcript_settles_and_its_last_lines_are_kept(tmp_path: Path) -> None:
    agent_port, customer_port = free_udp_ports(2)
    write_callback_agent(tmp_path, agent_port)
    (tmp_path / "queues.yaml").write_text("queues:\n  - name: support\n    max_wait_s: 600\n"
                                          "    live_transcript: true\n    assist: false\n")
    agent = phone(agent_port, "en_agent_card_number.wav", "--hangup-after", "6")
    customer = phone(customer_port, "en_refund_question.wav")  # stays on the line until voicebot hangs up
    recorded: list[dict[str, Any]] = []
    calls: list[BridgedCall] = []
    lives: list[LiveCall] = []
    reads: list[int] = []

    async def scenario() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        customer_gone = asyncio.Event()

        def watch_customer() -> None:
            assert customer.stdout is not None
            for line in customer.stdout:
                if json.loads(line).get("event") == "disconnected":
                    loop.call_soon_threadsafe(customer_gone.set)

        threading.Thread(target=watch_customer, daemon=True).start()

        async def recognise(pcm16k: np.ndarray, lang: str | None) -> str:
            await customer_gone.wait()  # recognised only once the customer's call is over
            return "words heard on the bridge"

        def recorded_dialplan(call_id: str) -> str:
            reads.append(threading.get_ident())
            return "finance" if call_id == "caller-7" else ""

        def sink_for(call: BridgedCall) -> Any:
            calls.append(call)
            return recorded.append

        def on_bridged(call: BridgedCall) -> LiveCall | None:
            live = follower.start_call(call)
            if live is not None:
                lives.append(live)
            return live

        follower = LiveTranscripts(LiveAsr(recognise, lambda: False, max_pending=32, max_in_flight=32),
                                   follow=lambda queue: QueueFollow(True, assist=False), sink_for=sink_for,
                                   publisher=lambda: None)
        ua = UserAgent("127.0.0.1", 0, egress=EgressPolicy(["127.0.0.0/8"]))
        await ua.start()
        service = AcdService(MemoryStore(), load_agents(tmp_path / "agents.yaml"),
                             load_queues(tmp_path / "queues.yaml"), node="n1", poll_s=0.1)
        start = free_udp_ports(1, span=40, even=True)[0]
        handoff = HandoffManager(ua, PortAllocator(start, start + 40), service, media_host="127.0.0.1",
                                 dtmf_payload_type=101, egress=EgressPolicy(["127.0.0.0/8"]), ring_timeout_s=10,
                                 callback_uri_template=f"sip:{{number}}@127.0.0.1:{customer_port}")
        handoff.on_bridged = on_bridged
        handoff.recorded_dialplan = recorded_dialplan
        handoff.start()
        try:
            context = CallContextRecord("ctx_caller7", "caller-7", "****0100", "en-US", time.time())
            await service.put_context(context)
            await service.enqueue("caller-7", "support", ("billing",), 0, "ctx_caller7")
            await service.request_callback("caller-7", "+15550100")
            await service.set_agent_state("a1", "available")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                stats = (await service.snapshot()).stats["support"]
                if stats.callbacks_done or stats.callbacks_failed:
                    break
                await asyncio.sleep(0.2)
            return {"done": stats.callbacks_done, "failed": stats.callbacks_failed,
                    "loop_thread": threading.get_ident()}
        finally:
            await handoff.close()
            await follower.asr.close()
            await ua.stop()

    try:
        result = asyncio.run(scenario())
    finally:
        for proc in (agent, customer):
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
    assert (result["done"], result["failed"]) == (1, 0)
    # Read before dialling: the caller's language (call context) and the call's dialplan, off the event loop.
    assert [(c.call_id, c.lang, c.dialplan) for c in calls] == [("caller-7", "en-US", "finance")]
    assert reads and all(thread != result["loop_thread"] for thread in reads)
    # The agent hung up: the customer was hung up at once, so the lines still being recognised reached the record.
    [live] = lives
    assert live.dropped == 0, f"{live.dropped} line(s) dropped: the customer was still on the line"
    assert live.lines > 0 and any(e.get("live") for e in recorded)
