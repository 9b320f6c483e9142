"""Browser agents: ring an agent on their desktop page; their answered WebRTC leg is bridged to the caller.

An agent with ``browser: true`` (or no ``sip_uri``) is not dialled: the ACD's screen-pop reaches their page, which
answers by posting a WebRTC offer to ``POST /agents/{agent}/answer`` with the agent's own token. aiortc answers
(``iceServers=[]`` by default: host candidates only); the agent's :class:`WebRtcChannel` is then bridged to the
caller's leg (SIP or WebRTC) by voicebot.handoff.acd like any agent leg, so a SIP caller's stereo recording keeps
running (caller left, agent right). Either side hanging up ends both legs and the agent goes to wrap-up; no answer
within the ring timeout puts the caller back at the head of the queue, as for SIP agents.

With several nodes, the page talks to one node while the caller may be held (and the agent rung) on another: an
answer for an assignment owned by another node is forwarded there (voicebot.api.forward, signalling only) and the
owner's SDP answer is returned to the page, so media flows between the browser and the owning node.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription

from voicebot.api.app import HUB_KEY, audit, principal_of, roles
from voicebot.api.jsonbody import read_json
from voicebot.api.forward import FORWARDED_HEADER, AnswerForwarder, ForwardError
from voicebot.channels.webrtc import WebRtcChannel
from voicebot.handoff.acd import CallQueue
from voicebot.queues.acd import AcdError
from voicebot.queues.models import AgentConfig
from voicebot.queues.service import AcdService, AgentChanged, ServiceEvent
from voicebot.queues.state import Assignment
from voicebot.web.media_bind import bound_to
from voicebot.web.protocol import ProtocolError, parse_offer
from voicebot.web.routes import IceServerSpec, ice_configuration

__all__ = ["AnswerRefused", "BrowserAgentLegs", "add_browser_agent_routes", "is_browser_agent"]

log = logging.getLogger("voicebot.handoff.browser")

SCRIPT = Path(__file__).resolve().parents[1] / "api" / "static" / "agent_call.js"


def is_browser_agent(agent: AgentConfig) -> bool:
    """Rung on the desktop page rather than by SIP: ``browser: true``, or no SIP phone at all."""
    return agent.browser or not (agent.sip_uri or getattr(agent, "sip_user", None))


class AnswerRefused(Exception):
    """The page's answer cannot be taken; ``status`` is the HTTP status to reply with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Ringing:
    assignment_id: str
    agent_id: str
    call_id: str
    answered: asyncio.Future[WebRtcChannel] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class BrowserAgentLegs:
    """Rings browser agents (waits for their page's answer) and runs the bridged call; one per server process."""

    def __init__(self, service: AcdService, *, ring_timeout_s: float = 20.0,
                 ice_servers: Sequence[IceServerSpec] = (), media_host: str | None = None) -> None:
        self.service = service
        self.ring_timeout_s = ring_timeout_s
        self.configuration = ice_configuration(ice_servers)
        self.media_host = media_host  # the agent's media binds only this address (None: every interface)
        self._ringing: dict[str, _Ringing] = {}  # assignment id -> offer waiting for the page
        self.forwarder: AnswerForwarder | None = None  # set with a shared store: answers for other nodes' calls
        self._unsubscribe = service.subscribe(self._on_event)

    @staticmethod
    def answers_for(agent: AgentConfig) -> bool:
        """Whether ``agent`` is rung here (on their page) instead of by SIP."""
        return is_browser_agent(agent)

    def close(self) -> None:
        self._unsubscribe()
        for ringing in list(self._ringing.values()):
            if not ringing.answered.done():
                ringing.answered.cancel()

    async def _on_event(self, event: ServiceEvent) -> None:
        """The ACD withdrew an offer (agent rejected or went offline, caller left): stop waiting for the page."""
        if not isinstance(event, AgentChanged):
            return
        for ringing in list(self._ringing.values()):
            if ringing.agent_id == event.agent_id and event.assignment_id != ringing.assignment_id:
                if not ringing.answered.done():
                    ringing.answered.cancel()

    # ------------------------------------------------------------------ the page answers
    async def answer(self, agent_id: str, assignment_id: str, offer_sdp: str) -> tuple[str, str]:
        """Answer the page's WebRTC offer for a ringing assignment of ``agent_id``: (answer SDP, leg id)."""
        ringing = self._ringing.get(assignment_id)
        if ringing is None or ringing.agent_id != agent_id:
            raise AnswerRefused(404, f"no call {assignment_id!r} is ringing for agent {agent_id!r} on this node")
        if ringing.answered.done():
            raise AnswerRefused(409, "this call was already answered, withdrawn or timed out")
        pc = RTCPeerConnection(self.configuration)
        channel = WebRtcChannel(pc, call_id=f"{ringing.call_id}~agent-{agent_id}")
        try:
            with bound_to(self.media_host):
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
                await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # noqa: BLE001 - aiortc's SDP parser fails with assert/Key/Value errors
            await channel.close()
            raise AnswerRefused(400, f"cannot answer this offer: {str(exc) or type(exc).__name__}") from None
        if ringing.answered.done():  # timed out or withdrawn while the answer was being made
            await channel.close()
            raise AnswerRefused(409, "this call was withdrawn or timed out before the answer was ready")
        ringing.answered.set_result(channel)
        return pc.localDescription.sdp, channel.call_id

    async def owner_elsewhere(self, agent_id: str, assignment_id: str) -> str | None:
        """The other node that holds this offer of ``agent_id`` (shared ACD state), or None if it is not elsewhere."""
        assignment = (await self.service.snapshot()).assignments.get(assignment_id)
        if assignment is None or assignment.agent_id != agent_id or assignment.node == self.service.node:
            return None
        return assignment.node

    # ------------------------------------------------------------------ ringing
    async def ring(self, waiter: CallQueue, assignment: Assignment, agent: AgentConfig) -> WebRtcChannel | None:
        """Wait up to the ring timeout for the page's answer: the agent's leg, or None (no-answer reported)."""
        ringing = _Ringing(assignment.id, agent.id, waiter.call_id)
        self._ringing[assignment.id] = ringing
        log.info("ringing browser agent", extra={"fields": {"call_id": waiter.call_id, "agent": agent.id}})
        try:
            done, _ = await asyncio.wait({ringing.answered}, timeout=self.ring_timeout_s)
        finally:
            self._ringing.pop(assignment.id, None)
            if not ringing.answered.done():
                ringing.answered.cancel()  # a late answer from the page now gets 409
        if not done or ringing.answered.cancelled():
            reason = "withdrawn" if done else "no answer"
            log.info("browser agent did not answer", extra={"fields": {
                "call_id": waiter.call_id, "agent": agent.id, "reason": reason}})
            if not done and not waiter.done:
                try:
                    await self.service.agent_no_answer(assignment.id)
                except AcdError as error:  # the ACD moved on meanwhile (e.g. the caller left)
                    log.info("no-answer not applied: %s", error, extra={"fields": {"call_id": waiter.call_id}})
            return None
        return ringing.answered.result()


def add_browser_agent_routes(app: web.Application, legs: BrowserAgentLegs) -> None:
    """POST /agents/{agent}/answer (the agent's own token only) and the page's /agent_call.js."""

    @roles("agent")
    async def answer(request: web.Request) -> web.Response:
        agent_id = request.match_info["agent"]
        principal = principal_of(request)
        if principal.agent != agent_id:
            audit("browser_answer_denied", principal, agent=agent_id)
            return web.json_response({"error": "only the agent's own token may answer its calls"}, status=403)
        try:
            body: Any = await read_json(request)
            assignment_id = body.get("assignment") if isinstance(body, dict) else None
            if not isinstance(assignment_id, str) or not assignment_id:
                raise ProtocolError('send JSON: {"assignment": ID, "type": "offer", "sdp": "v=0..."}')
            offer = parse_offer(await request.read())
        except (ValueError, ProtocolError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        try:
            sdp, leg_id = await legs.answer(agent_id, assignment_id, offer.sdp)
        except AnswerRefused as exc:
            if exc.status == 404 and legs.forwarder is not None and FORWARDED_HEADER not in request.headers:
                owner = await legs.owner_elsewhere(agent_id, assignment_id)
                if owner is not None:
                    return await _forward(request, legs.forwarder, owner, agent_id, assignment_id)
            return web.json_response({"error": str(exc)}, status=exc.status)
        audit("browser_answer", principal, agent=agent_id, assignment=assignment_id)
        return web.json_response({"type": "answer", "sdp": sdp, "leg": leg_id})

    async def _forward(request: web.Request, forwarder: AnswerForwarder, owner: str, agent_id: str,
                       assignment_id: str) -> web.Response:
        """The owning node answers (the page's body and token, unchanged); its reply goes back to the page."""
        token = request.headers.get("Authorization", "").partition(" ")[2].strip()
        principal = principal_of(request)
        try:
            status, reply = await forwarder.forward(owner, agent_id, token, await request.read())
        except ForwardError as exc:
            log.warning("browser answer not forwarded: %s", exc, extra={"fields": {"agent": agent_id, "node": owner}})
            audit("browser_answer_forward_failed", principal, agent=agent_id, assignment=assignment_id, node=owner)
            return web.json_response({"error": str(exc), "node": owner}, status=502)
        audit("browser_answer_forwarded", principal, agent=agent_id, assignment=assignment_id, node=owner,
              status=status)
        log.info("browser answer forwarded", extra={"fields": {"agent": agent_id, "node": owner, "status": status}})
        return web.json_response(reply, status=status)

    async def script(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(SCRIPT, headers={"Cache-Control": "no-cache", "Content-Type": "text/javascript"})

    setattr(script, "voicebot_public", True)  # static code, no data: same marker as voicebot.api.app.public
    app[HUB_KEY].browser_media = True
    app.router.add_post("/agents/{agent}/answer", answer)
    app.router.add_get("/agent_call.js", script)
