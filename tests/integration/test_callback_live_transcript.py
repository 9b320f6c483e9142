"""A callback placed through the ACD is followed live like an inbound bridged call (issue 19): real SIP peers on
loopback (two PJSIP phones: the agent, then the customer called back, each playing a Piper fixture in a loop), the
real ACD and dialer, real speech workers (tiny.en), the real segmenter, redactor and quality checks. The agent's
forbidden phrase raises an alert; the customer's words reach the agent's desktop and the record. A queue without
``live_transcript`` is not followed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.support import REPO, free_udp_ports
from voicebot.calls.quality_watch import quality_sink
from voicebot.compliance.lint import DEFAULT_POLICY_DIR, load_policies, policies_for
from voicebot.compliance.quality import LiveQualityCheck
from voicebot.handoff import HandoffManager
from voicebot.handoff.live_transcript import follow_bridged_calls
from voicebot.queues.models import load_agents, load_queues
from voicebot.queues.service import AcdService
from voicebot.queues.store import MemoryStore
from voicebot.rtp.ports import PortAllocator
from voicebot.sip.transport import EgressPolicy
from voicebot.sip.ua import UserAgent
from voicebot.speech.prompts import PromptCache
from voicebot.speech.services import SpeechServices
from voicebot.speech.workers import SpeechWorkerPool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PHONE = Path(__file__).resolve().parent / "pjsua_agent.py"
FIXTURES = REPO / "tests" / "audio_fixtures"


class Desk:
    """The agent desktop and supervisor sockets (AgentHub's two methods)."""

    def __init__(self) -> None:
        self.agent: list[dict[str, Any]] = []
        self.supervisors: list[dict[str, Any]] = []

    async def send_agent(self, agent_id: str, message: dict[str, Any]) -> None:
        self.agent.append({"to": agent_id, **message})

    async def alert_supervisors(self, message: dict[str, Any]) -> None:
        self.supervisors.append(message)


def phone(port: int, wav: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(PHONE), "--port", str(port), "--play", str(FIXTURES / wav),
                             "--timeout", "90", *extra], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


@pytest.fixture(scope="module")
def pool() -> Any:
    workers = SpeechWorkerPool(1, asr_models=("tiny.en",))
    asyncio.run(workers.start())
    yield workers
    asyncio.run(workers.close())


@pytest.mark.parametrize("followed", [True, False])
def test_a_callback_bridged_to_an_agent_is_transcribed_checked_and_pushed_live(
        tmp_path: Path, pool: SpeechWorkerPool, followed: bool) -> None:
    agent_port, customer_port = free_udp_ports(2)
    (tmp_path / "agents.yaml").write_text(f"""agents:
  - id: a1
    name: Test Agent
    sip_uri: sip:agent@127.0.0.1:{agent_port}
    skills: {{billing: 5}}
    languages: [en-US]
    wrap_up_s: 0
""")
    (tmp_path / "queues.yaml").write_text(f"""queues:
  - name: support
    max_wait_s: 600
    live_transcript: {str(followed).lower()}
    assist: false
  - name: other
    live_transcript: true
""")
    # The customer asks about a refund and hangs up after a while; the agent asks for the full card number.
    agent = phone(agent_port, "en_agent_card_number.wav")
    customer = phone(customer_port, "en_refund_question.wav", "--hangup-after", "14")
    queues = load_queues(tmp_path / "queues.yaml")
    recorded: list[dict[str, Any]] = []
    alerts: list[Any] = []
    desk = Desk()
    speech = SpeechServices(pool, PromptCache(tmp_path / "prompts"), asr_model="tiny.en")
    check = LiveQualityCheck(policies_for("", load_policies(DEFAULT_POLICY_DIR)))  # what the server uses
    sink = quality_sink(check, recorded.append, alerts.append)

    async def scenario() -> dict[str, Any]:
        ua = UserAgent("127.0.0.1", 0, egress=EgressPolicy(["127.0.0.0/8"]))
        await ua.start()
        service = AcdService(MemoryStore(), load_agents(tmp_path / "agents.yaml"), queues, node="n1", poll_s=0.1)
        start = free_udp_ports(1, span=40, even=True)[0]
        handoff = HandoffManager(ua, PortAllocator(start, start + 40), service, media_host="127.0.0.1",
                                 dtmf_payload_type=101, egress=EgressPolicy(["127.0.0.0/8"]), ring_timeout_s=10,
                                 callback_uri_template=f"sip:{{number}}@127.0.0.1:{customer_port}")
        follower = follow_bridged_calls(queues, speech, sink_for=lambda _call_id: sink, publisher=lambda: desk)
        assert follower is not None
        handoff.on_bridged = follower.start_call
        handoff.start()
        try:
            # A caller waited with no agent staffed and chose a callback; an agent frees up: the callback is due.
            await service.enqueue("caller-7", "support", ("billing",), 0, "ctx_caller7")
            await service.request_callback("caller-7", "+15550100")
            await service.set_agent_state("a1", "available")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                stats = (await service.snapshot()).stats["support"]
                if stats.callbacks_done or stats.callbacks_failed:
                    break
                await asyncio.sleep(0.2)
            return {"done": stats.callbacks_done, "failed": stats.callbacks_failed}
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
    assert result == {"done": 1, "failed": 0}
    lines = [(e["who"], e["text"].lower()) for e in recorded if e.get("live")]
    if not followed:  # the queue's switch: nothing recognised, written or pushed
        assert lines == [] and desk.agent == [] and alerts == []
        assert not any(e.get("event") == "live_transcript" for e in recorded)
        return
    assert [e["queue"] for e in recorded if e.get("event") == "live_transcript"] == ["support"]
    assert any(who == "caller" and "refund" in text for who, text in lines), lines
    assert any(who == "agent" and "card number" in text for who, text in lines), lines
    # The agent's forbidden phrase: an alert and a quality event, as on an inbound bridged call.
    assert ("forbidden_phrase", "tell me your full card number", "agent") in {
        (a.kind, a.rule, a.speaker) for a in alerts}
    assert any(e.get("event") == "quality" and e["speaker"] == "agent" for e in recorded)
    # Pushed live to the agent's desktop and to the supervisors, under the original call's id.
    assert {m["who"] for m in desk.agent if m["type"] == "transcript"} == {"caller", "agent"}
    assert {(m["call_id"], m["agent"]) for m in desk.supervisors} == {("caller-7", "a1")}
