"""Browser agent legs in-process over real SIP and real WebRTC (aiortc as the agent's page) on loopback.

A browser agent who does not answer within the ring timeout sends the caller back to the head of the queue; the
next browser agent answers, audio flows both ways (caller phone RTP <-> voicebot <-> WebRTC), a late or foreign
answer is refused, and the caller hanging up ends the WebRTC leg and frees the agent.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from tests.integration.test_handoff_failures import (LOOPBACK, assert_idle, connected_to, port_allocator, queue_caller,
                                                     running_node, stop_ua, wait_until)
from voicebot.handoff.browser import AnswerRefused, BrowserAgentLegs
from voicebot.queues.store import MemoryStore
from voicebot.sip.ua import UserAgent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


class ToneTrack(MediaStreamTrack):
    """The agent's microphone: a 440 Hz tone, 48 kHz, paced at 20 ms."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self._pts / 48000 - time.monotonic()))
        t = (np.arange(960) + self._pts) / 48000
        frame = av.AudioFrame.from_ndarray((8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16).reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self._pts, fractions.Fraction(1, 48000)
        self._pts += 960
        return frame


class AgentPage:
    """What agent_call.js does, in aiortc: offer with a microphone and a control channel, collect what is heard."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(ToneTrack())
        self.control = self.pc.createDataChannel("control")
        self.hangups: list[str] = []
        self.control.on("message", self.hangups.append)
        self.heard: list[np.ndarray] = []
        self.pc.on("track", lambda track: asyncio.ensure_future(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.heard.append(frame.to_ndarray().reshape(-1))
        except MediaStreamError:
            return

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    def rms(self) -> float:
        return float(np.sqrt(np.mean(np.concatenate(self.heard[-100:]).astype(np.float64) ** 2))) if self.heard else 0.0


def write_agents(cwd: Path) -> None:
    cwd.joinpath("agents.yaml").write_text("agents:\n" + "".join(
        f"  - {{id: {a}, name: Agent {a}, browser: true, skills: {{billing: 5}}, languages: [en-US], wrap_up_s: 0}}\n"
        for a in ("b1", "b2")))
    cwd.joinpath("queues.yaml").write_text("queues:\n  - name: support\n    max_wait_s: 600\n")


def test_unanswered_browser_agent_requeues_then_next_answers_and_audio_flows(tmp_path: Path) -> None:
    write_agents(tmp_path)

    async def scenario() -> None:
        phone_ua = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
        await phone_ua.start()
        async with running_node(tmp_path, MemoryStore(), "n1", ring_timeout_s=10) as node:
            legs = BrowserAgentLegs(node.service, ring_timeout_s=2.0)
            node.handoff.browser_legs = legs
            for agent in ("b1", "b2"):
                await node.service.set_agent_state(agent, "available")
            caller = await queue_caller(phone_ua, node, port_allocator(), "+15550001111")
            state = await node.service.snapshot()
            first = next(a for a in state.agents.values() if a.state == "reserved")
            first_assignment = first.assignment_id
            assert first_assignment is not None
            # Nobody answers on the first agent's page: after the ring timeout the caller is offered to the other.
            await wait_until(lambda: len(node.offers) >= 2, 8, "the caller to be offered to the next agent")
            state = await node.service.snapshot()
            second = next(a for a in state.agents.values() if a.state == "reserved")
            assert second.agent_id != first.agent_id and state.agents[first.agent_id].no_answers == 1
            page = AgentPage()
            sdp = await page.offer()
            with pytest.raises(AnswerRefused) as late:
                await legs.answer(first.agent_id, first_assignment, sdp)
            assert late.value.status == 404
            with pytest.raises(AnswerRefused) as foreign:
                await legs.answer(first.agent_id, second.assignment_id or "", sdp)
            assert foreign.value.status == 404
            answer, leg_id = await legs.answer(second.agent_id, second.assignment_id or "", sdp)
            with pytest.raises(AnswerRefused) as twice:
                await legs.answer(second.agent_id, second.assignment_id or "", sdp)
            assert twice.value.status == 409
            await page.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            assert leg_id.startswith(caller.waiter.call_id)
            await wait_until(lambda: connected_to(node.service, caller.waiter.call_id), 10, "the bridge")
            assert caller.waiter.bridged.is_set() and caller.waiter.agent_id == second.agent_id

            phone_heard: list[np.ndarray] = []
            caller.phone_stream.on_audio(phone_heard.append)
            t = np.arange(8000 * 8) / 8000
            caller.phone_stream.play((6000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16))
            await wait_until(lambda: len(phone_heard) > 150 and page.rms() > 1000, 15, "audio both ways")
            heard = np.concatenate(phone_heard[-100:]).astype(np.float64)
            assert np.sqrt(np.mean(heard**2)) > 1000, "the agent's tone reaches the caller's phone"
            spectrum = np.abs(np.fft.rfft(heard))
            assert abs(np.argmax(spectrum) * 8000 / heard.size - 440) < 20, "it is the agent's 440 Hz tone"

            await caller.hang_up()  # the caller hangs up: the agent's page is told and the agent is freed
            await wait_until(lambda: page.hangups, 5, "the hang-up to reach the agent's page")
            assert '"hangup"' in page.hangups[0]
            async def call_over() -> bool:
                return (await node.service.snapshot()).assignments == {}

            await wait_until(call_over, 5, "the call to end in the ACD")
            assert_idle(await node.service.snapshot())
            legs.close()
            await page.pc.close()
        await stop_ua(phone_ua)

    asyncio.run(scenario())
