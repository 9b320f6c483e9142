"""The agent desktop's WebSocket: authenticate with the first message, then screen-pops and state buttons.

Client -> server:  {"type": "auth", "token": "vbt_..."}                 (first message, within the timeout)
                   {"type": "state", "state": "available"|"offline"|"wrap_up"}
                   {"type": "accept", "assignment": ID}  |  {"type": "reject", "assignment": ID}
                   {"type": "disposition", "call_id": ID, "code": CODE}   (a call the agent answered; issue 19)
Server -> client:  {"type": "hello", "agent": ID, "name": ..., "state": ..., "browser": bool}  (browser:
                   only where this app answers WebRTC legs: true = the agent answers calls in the page)
                   {"type": "screen_pop", "assignment": {...}, "context": {...} | null}
                   {"type": "state", "state": ..., "assignment": ID | null}
                   {"type": "disposition", "call_id": ID, "code": CODE}   (stored in the call's record)
                   {"type": "error", "message": ...}
                   {"type": "transcript", "call_id", "who", "text", "t"}  |  {"type": "assist", "call_id",
                   "cards": [...]}   (a bridged call followed live: voicebot.handoff.live_transcript)
Screen-pops come from the ACD service's events, so an assignment made on any node reaches the agent's page.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import WSMsgType, web

from voicebot.api.jsonbody import JsonBodyError, loads_bounded
from voicebot.api.tokens import Principal
from voicebot.web.admission import source_key
from voicebot.queues.acd import AcdError
from voicebot.queues.models import AgentConfig
from voicebot.queues.service import AcdService, AgentChanged, AssignmentOffered, ServiceEvent
from voicebot.queues.state import Assignment

__all__ = ["AgentHub"]

log = logging.getLogger(__name__)


def _answers_in_browser(agent: AgentConfig) -> bool:
    """Same rule as voicebot.handoff.browser.is_browser_agent (not imported: that module imports the API)."""
    return agent.browser or not (agent.sip_uri or getattr(agent, "sip_user", None))


class AgentHub:
    """Agent desktop sockets. Sockets not signed in yet are capped per address and in total (each may wait
    ``auth_timeout_s``): more get 429 / 503 before the upgrade."""

    def __init__(self, service: AcdService, auth_timeout_s: float = 10.0, *, max_unauthenticated_per_source: int = 20,
                 max_unauthenticated: int = 500) -> None:
        self.service = service
        self.auth_timeout_s = auth_timeout_s
        self.max_unauthenticated_per_source = max_unauthenticated_per_source
        self.max_unauthenticated = max_unauthenticated
        self._unauthenticated: dict[str, int] = {}  # address -> sockets waiting for their auth message
        self._sockets: dict[str, set[web.WebSocketResponse]] = {}
        self._principals: dict[web.WebSocketResponse, Principal] = {}  # who signed each open socket in
        self._supervisors: set[web.WebSocketResponse] = set()  # admin/supervisor sockets: agent alerts
        self._unsubscribe: Callable[[], None] | None = None
        self.browser_media = False  # True once voicebot.handoff.browser serves WebRTC answers on this app
        # (agent, call id, code) -> why it was refused, or None: set by voicebot.api.cases (the call's record)
        self.on_disposition: Callable[[str, Any, Any], Awaitable[str | None]] | None = None

    def start(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.service.subscribe(self._on_event)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for sockets in [*self._sockets.values(), set(self._supervisors)]:
            for ws in list(sockets):
                await ws.close(code=1001, message=b"server shutting down")

    async def close_revoked(self, valid: Callable[[str], bool]) -> list[Principal]:
        """Close the sockets whose token is no longer ``valid`` (revoked); returns their principals."""
        revoked = [(ws, principal) for ws, principal in list(self._principals.items())
                   if not valid(principal.token_id)]
        for ws, _principal in revoked:
            self._principals.pop(ws, None)
            await ws.close(code=4401, message=b"token revoked")
        return [principal for _ws, principal in revoked]

    async def _on_event(self, event: ServiceEvent) -> None:
        if isinstance(event, AssignmentOffered):
            if event.assignment.agent_id in self._sockets:
                await self._send_all(event.assignment.agent_id, await self._screen_pop(event.assignment))
        elif isinstance(event, AgentChanged):
            if event.agent_id in self._sockets:
                await self._send_all(event.agent_id, {"type": "state", "state": event.state,
                                                      "assignment": event.assignment_id, "reason": event.reason})
            if event.reason == "no_answer":
                await self._send_supervisors({"type": "agent_not_ready", "agent": event.agent_id,
                                              "reason": event.reason, "no_answers": event.consecutive_no_answers})

    async def send_agent(self, agent_id: str, message: dict[str, Any]) -> None:
        """Tell one agent's desktops now (e.g. a live transcript line or an assist card of their call)."""
        if agent_id in self._sockets:
            await self._send_all(agent_id, message)

    async def alert_supervisors(self, message: dict[str, Any]) -> None:
        """Tell every supervisor desktop now (e.g. a live quality alert of a call)."""
        await self._send_supervisors(message)

    async def _send_supervisors(self, message: dict[str, Any]) -> None:
        for ws in list(self._supervisors):
            try:
                await ws.send_json(message)
            except (ConnectionError, RuntimeError):
                self._supervisors.discard(ws)

    async def _screen_pop(self, assignment: Assignment) -> dict[str, Any]:
        context = await self.service.get_context(assignment.context_id) if assignment.context_id else None
        data = asdict(assignment)
        data.pop("entry", None)
        return {"type": "screen_pop", "assignment": data, "context": context}

    async def _send_all(self, agent_id: str, message: dict[str, Any]) -> None:
        for ws in list(self._sockets.get(agent_id, ())):
            try:
                await ws.send_json(message)
            except (ConnectionError, RuntimeError):
                self._sockets[agent_id].discard(ws)

    async def handle(
        self,
        request: web.Request,
        authenticate: Callable[[str | None], Principal | web.Response],
        audit: Callable[..., None],
        *,
        supervisor: bool = False,
    ) -> web.StreamResponse:
        address = source_key(request.remote or "?")
        if self._unauthenticated.get(address, 0) >= self.max_unauthenticated_per_source:
            return web.json_response({"error": "too many connections from your address waiting to sign in"},
                                     status=429, headers={"Retry-After": str(int(self.auth_timeout_s) + 1)})
        if sum(self._unauthenticated.values()) >= self.max_unauthenticated:
            return web.json_response({"error": "too many connections waiting to sign in; try again shortly"},
                                     status=503, headers={"Retry-After": "5"})
        self._unauthenticated[address] = self._unauthenticated.get(address, 0) + 1
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=16 * 1024)
        try:
            await ws.prepare(request)
            first = await ws.receive(timeout=self.auth_timeout_s)
        except asyncio.TimeoutError:
            await ws.close(code=4401, message=b"authenticate first")
            return ws
        finally:
            left = self._unauthenticated.get(address, 0) - 1
            if left > 0:
                self._unauthenticated[address] = left
            else:
                self._unauthenticated.pop(address, None)
        token = None
        if first.type == WSMsgType.TEXT:
            try:
                body = loads_bounded(first.data)
                if isinstance(body, dict) and body.get("type") == "auth" and isinstance(body.get("token"), str):
                    token = body["token"]
            except JsonBodyError:
                pass
        outcome = authenticate(token)
        if isinstance(outcome, web.Response):
            await ws.close(code=4429 if outcome.status == 429 else 4401, message=b"authentication failed")
            return ws
        if supervisor:
            if outcome.role not in ("admin", "supervisor"):
                await ws.close(code=4403, message=b"supervisor token required")
                return ws
            return await self._supervise(ws, outcome, request, audit)
        if outcome.role != "agent" or outcome.agent not in self.service.agents:
            await ws.close(code=4403, message=b"agent token required")
            return ws
        agent_id = outcome.agent
        audit("agent_desktop_login", outcome, agent=agent_id, address=request.remote)
        self._sockets.setdefault(agent_id, set()).add(ws)
        self._principals[ws] = outcome
        try:
            await self._greet(ws, agent_id)
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                await self._command(ws, agent_id, message.data, outcome, audit)
        finally:
            self._principals.pop(ws, None)
            sockets = self._sockets.get(agent_id)
            if sockets is not None:
                sockets.discard(ws)
                if not sockets:
                    del self._sockets[agent_id]
        return ws

    async def _supervise(self, ws: web.WebSocketResponse, principal: Principal, request: web.Request,
                         audit: Callable[..., None]) -> web.WebSocketResponse:
        """A supervisor's socket: receives agent alerts (e.g. set not-ready after unanswered offers)."""
        audit("supervisor_ws_login", principal, address=request.remote)
        self._supervisors.add(ws)
        try:
            await ws.send_json({"type": "hello", "role": principal.role})
            async for _message in ws:
                pass  # supervisors only listen
        finally:
            self._supervisors.discard(ws)
        return ws

    async def _greet(self, ws: web.WebSocketResponse, agent_id: str) -> None:
        state = await self.service.snapshot()
        status = state.agents.get(agent_id)
        config = self.service.agents[agent_id]
        hello: dict[str, Any] = {"type": "hello", "agent": agent_id, "name": config.name,
                 "state": status.state if status else "offline",
                 "assignment": status.assignment_id if status else None}
        if self.browser_media:
            hello["browser"] = _answers_in_browser(config)
        await ws.send_json(hello)
        if status is not None and status.assignment_id in state.assignments:
            await ws.send_json(await self._screen_pop(state.assignments[status.assignment_id]))

    async def _command(
        self, ws: web.WebSocketResponse, agent_id: str, text: str, principal: Principal, audit: Callable[..., None]
    ) -> None:
        try:
            body = loads_bounded(text)
            kind = body["type"]
        except (JsonBodyError, KeyError, TypeError):
            await ws.send_json({"type": "error", "message": "send JSON objects with a 'type'"})
            return
        try:
            if kind == "state" and body.get("state") in ("available", "offline", "wrap_up"):
                await self.service.set_agent_state(agent_id, body["state"])
                audit("agent_state", principal, agent=agent_id, state=body["state"])
            elif kind in ("accept", "reject") and isinstance(body.get("assignment"), str):
                snapshot = await self.service.snapshot()
                assignment = snapshot.assignments.get(body["assignment"])
                if assignment is None or assignment.agent_id != agent_id:
                    await ws.send_json({"type": "error", "message": "no such assignment for you"})
                    return
                if (kind == "accept" and self.browser_media and assignment.kind == "call"
                        and _answers_in_browser(self.service.agents[agent_id])):
                    await ws.send_json({"type": "error", "message": "answer this call in the browser (Answer)"})
                elif kind == "accept":
                    await self.service.agent_answered(assignment.id)
                else:
                    await self.service.agent_no_answer(assignment.id)
            elif kind == "disposition" and self.on_disposition is not None:
                refused = await self.on_disposition(agent_id, body.get("call_id"), body.get("code"))
                if refused is not None:
                    await ws.send_json({"type": "error", "message": refused})
                    return
                audit("disposition", principal, agent=agent_id, call_id=body["call_id"], code=body["code"])
                await ws.send_json({"type": "disposition", "call_id": body["call_id"], "code": body["code"]})
            else:
                await ws.send_json({"type": "error", "message": f"unknown command {kind!r}"})
        except AcdError as exc:
            await ws.send_json({"type": "error", "message": str(exc)})
