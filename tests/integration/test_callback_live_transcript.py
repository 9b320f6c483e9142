"""A callback placed through the ACD is followed live like an inbound bridged call (issue 19), through the server's
own wiring: a real `VoicebotServer` (in this process, its config written like the other integration tests') with
its ACD, dialer, call records, quality alerts and agent/supervisor sockets, real speech workers (tiny.en) handed to
it as its runtime's; real SIP peers on loopback (two PJSIP phones: the agent, then the customer called back, each
playing a Piper fixture in a loop). The call being followed up ran the finance dialplan (its record says so): the
agent's forbidden phrase raises an alert naming that dialplan on the supervisor socket; the customer's words reach
the agent's desktop and the call's record. A queue without ``live_transcript`` is not followed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.support import REPO, free_udp_ports, write_callback_agent, write_config
from voicebot.api.tokens import TokenStore
from voicebot.config import load_server_config
from voicebot.runtime import Runtime
from voicebot.server import VoicebotServer
from voicebot.speech.prompts import PromptCache
from voicebot.speech.services import SpeechServices
from voicebot.speech.workers import SpeechWorkerPool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PHONE = Path(__file__).resolve().parent / "pjsua_agent.py"
FIXTURES = REPO / "tests" / "audio_fixtures"


class Socket:
    """One desktop socket of the server's API (agent or supervisor), signed in, every message kept."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, url: str, token: str) -> Socket:
        ws = await session.ws_connect(url)
        await ws.send_json({"type": "auth", "token": token})
        hello = await ws.receive_json(timeout=10)  # signed in: the server pushes to this socket from now on
        assert hello["type"] == "hello", hello
        return cls(ws)

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(message.json())

    async def close(self) -> None:
        await self.ws.close()
        await self.task


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
    write_callback_agent(tmp_path, agent_port)
    (tmp_path / "queues.yaml").write_text(f"""queues:
  - name: support
    max_wait_s: 600
    live_transcript: {str(followed).lower()}
    assist: false
  - name: other
    live_transcript: true
""")
    write_config(tmp_path / "voicebot.yaml", extra=f"""queues: {{agents_file: {tmp_path / 'agents.yaml'},
  queues_file: {tmp_path / 'queues.yaml'}, ring_timeout_s: 10,
  callback_uri_template: "sip:{{number}}@127.0.0.1:{customer_port}"}}
""")
    tokens = TokenStore.load(tmp_path / "tokens.json")
    agent_token, supervisor_token = tokens.create("agent", agent="a1"), tokens.create("supervisor")
    tokens.save()
    config = load_server_config(tmp_path / "voicebot.yaml")
    cache = PromptCache(tmp_path / "prompts")
    runtime = Runtime(config, cache)
    runtime.speech = SpeechServices(pool, cache, asr_model="tiny.en")  # the module's workers, loaded once
    # The customer asks about a refund and hangs up after a while; the agent asks for the full card number.
    agent = phone(agent_port, "en_agent_card_number.wav")
    customer = phone(customer_port, "en_refund_question.wav", "--hangup-after", "14")

    async def scenario() -> dict[str, Any]:
        server = VoicebotServer(config, cache, runtime=runtime)
        await server.start()
        try:
            acd = server.acd
            assert acd is not None and server.api_port is not None
            # The call being followed up ran the finance dialplan, and asked for a callback while it waited.
            server.journal.start("caller-7", caller="****0100", dialplan="finance")
            server.journal.end("caller-7", outcome="callback", dialplan="finance")
            assert server.journal.flush()
            async with aiohttp.ClientSession() as session:
                base = f"http://127.0.0.1:{server.api_port}"
                desk = await Socket.open(session, f"{base}/ws/agent", agent_token)
                supervisor = await Socket.open(session, f"{base}/ws/supervisor", supervisor_token)
                await acd.enqueue("caller-7", "support", ("billing",), 0, "ctx_caller7")
                await acd.request_callback("caller-7", "+15550100")
                await acd.set_agent_state("a1", "available")  # an agent frees up: the callback is due
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    stats = (await acd.snapshot()).stats["support"]
                    if stats.callbacks_done or stats.callbacks_failed:
                        break
                    await asyncio.sleep(0.2)
                await desk.close()
                await supervisor.close()
            assert server.journal.flush() and server.journal.store is not None
            events = server.journal.store.events("caller-7")
            return {"done": stats.callbacks_done, "failed": stats.callbacks_failed,
                    "records": [{**e.data, "record": e.kind} for e in events],
                    "desk": desk.messages, "supervisors": supervisor.messages}
        finally:
            await server.drain(0)

    try:
        result = asyncio.run(scenario())
    finally:
        for proc in (agent, customer):
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
    assert (result["done"], result["failed"]) == (1, 0)
    recorded, desk, supervisors = result["records"], result["desk"], result["supervisors"]
    lines = [(e["record"], e["text"].lower()) for e in recorded if e.get("live")]
    alerts = [m for m in supervisors if m["type"] == "quality_alert"]
    if not followed:  # the queue's switch: nothing recognised, written or pushed
        assert lines == [] and alerts == [] and not any(m["type"] == "transcript" for m in desk)
        assert not any(e["record"] == "live_transcript" for e in recorded)
        return
    assert any(who == "caller" and "refund" in text for who, text in lines), lines
    assert any(who == "agent" and "card number" in text for who, text in lines), lines
    # The agent's forbidden phrase: a quality event in the record, and an alert on the supervisor socket that
    # names the dialplan the followed-up call ran (read from its record).
    assert ("forbidden_phrase", "tell me your full card number", "agent", "caller-7", "finance") in {
        (a["kind"], a["rule"], a["speaker"], a["call_id"], a["dialplan"]) for a in alerts}, alerts
    assert any(e["record"] == "quality" and e.get("speaker") == "agent" for e in recorded), recorded
    # Pushed live to the agent's desktop and to the supervisors, under the original call's id.
    assert {m["who"] for m in desk if m["type"] == "transcript"} == {"caller", "agent"}
    assert {(m["call_id"], m["agent"]) for m in supervisors if m["type"] == "transcript"} == {("caller-7", "a1")}
