"""Handoff to human agents: ACD queue membership per call, agent dialling with context headers, media bridge.

The ACD itself (voicebot.queues) is pure and shared (memory or Redis); this module is its SIP side on one node:
it rings the agent the ACD picked (X-Voicebot-Call-Id + User-to-User carrying the context id), relays RTP between
caller and agent through voicebot (so recording continues), and reports answers, no-answers and hang-ups back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from voicebot.compliance.redact import redact, redact_obj
from voicebot.dialplan import events as ev
from voicebot.queues.acd import AcdError
from voicebot.queues.callbacks import confirm_number
from voicebot.queues.context import CallContextRecord, call_id_header, user_to_user
from voicebot.queues.ewt import spoken_range
from voicebot.queues.models import AgentConfig
from voicebot.queues.service import AcdService, AssignmentOffered, ServiceEvent
from voicebot.queues.state import Assignment
from voicebot.rtp.ports import PortAllocator, PortsExhausted
from voicebot.rtp.stream import RtpStream
from voicebot.sip.call import CallState, SipCall
from voicebot.sip.sdp import SdpError, apply_answer, build_offer, parse_sdp
from voicebot.sip.transport import EgressPolicy
from voicebot.sip.ua import CallFailed, UserAgent

if TYPE_CHECKING:
    from voicebot.browser_agent import BrowserAgentLegs

log = logging.getLogger("voicebot.handoff")

MAX_RELAY_BACKLOG = 10  # frames; beyond this the relay drops the oldest audio (keeps latency bounded)


class QueueJoinError(Exception):
    """The caller could not be queued (unknown or full queue, closed, no agents configured)."""


@dataclass
class CallQueue:
    """One caller's membership of the ACD on this node, seen by the call session."""

    call_id: str
    queue: str
    context_id: str
    caller_number: str
    lang: str
    events: asyncio.Queue[ev.Event] = field(default_factory=asyncio.Queue)
    bridged: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False
    agent_leg: SipCall | None = None
    agent_id: str = ""


@dataclass
class CallerLeg:
    """What the handoff needs of the caller's call."""

    call: SipCall
    stream: RtpStream


class HandoffManager:
    """Joins callers to the ACD and connects them to agents; one per server process."""

    def __init__(self, ua: UserAgent, ports: PortAllocator, service: AcdService, *, media_host: str,
                 dtmf_payload_type: int, egress: EgressPolicy, ring_timeout_s: float = 20.0,
                 announce_every_s: float = 30.0, callback_allowed: tuple[str, ...] = ("*",),
                 callback_uri_template: str | None = None) -> None:
        self.ua = ua
        self.ports = ports
        self.service = service
        self.media_host = media_host
        self.dtmf_payload_type = dtmf_payload_type
        self.egress = egress
        self.ring_timeout_s = ring_timeout_s
        self.announce_every_s = announce_every_s
        self.callback_allowed = callback_allowed
        self.callback_uri_template = callback_uri_template
        self.browser_legs: BrowserAgentLegs | None = None  # set by the server: agents answering on their page
        self.agent_contact: Callable[[str], str | None] | None = None  # agent id -> registered phone Contact
        self._waiting: dict[str, tuple[CallQueue, CallerLeg]] = {}
        self.handed_over: dict[str, str] = {}  # call id -> call record outcome, for callers a stopping node let go
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe = service.subscribe(self._on_event)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._spawn(self.service.run())

    async def close(self) -> None:
        self._unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ callers
    async def join(self, leg: CallerLeg, queue: str, skills: tuple[str, ...], priority: int,
                   context: dict[str, Any], transcript: list[dict[str, Any]], caller_number: str,
                   lang: str) -> CallQueue:
        """Queue the caller with their context; raises QueueJoinError with a reason the dialplan can route on."""
        call_id = leg.call.call_id
        record = CallContextRecord.new(call_id, caller_number, lang, time.time())
        for entry in transcript:
            if entry.get("who") in ("caller", "bot") and entry.get("text"):
                record.add_turn(entry["who"], str(entry["text"]), entry.get("t", 0.0), masker=redact)
        slots = context.get("slots") or {}
        # The compliance redactor is the one masking path for every sink (logs, records, transcripts, Redis).
        record.set_slots({k: v for k, v in slots.items() if v != "***"},
                         sensitive=[k for k, v in slots.items() if v == "***"], masker=redact)
        if context.get("intent"):
            record.intents.append(str(context["intent"]))
        record.verified = context.get("verified")
        profile = {k: v for k, v in context.items() if k not in ("slots", "intent", "caller")}
        record.profile = redact_obj(profile)  # the masked caller number is record.caller; nothing raw here
        record.entered_queue(queue, time.time())
        waiter = CallQueue(call_id, queue, record.context_id, caller_number, lang)
        self._waiting[call_id] = (waiter, leg)  # before enqueue: an agent may be assigned at once
        try:
            # The agent-readable record keeps the number masked. The raw number stays only in the recovery alias
            # while the caller waits (another node calls back the callers of a lost node) and is removed as soon
            # as they leave the queue (answered, hung up, or their callback task took it): 15.20.
            await self.service.put_context(record, callback_number=self._reachable_at(caller_number))
            position = await self.service.enqueue(call_id, queue, skills, priority, record.context_id)
        except (AcdError, ValueError) as exc:
            self._waiting.pop(call_id, None)
            raise QueueJoinError(str(exc) or type(exc).__name__) from None
        log.info("caller queued", extra={"fields": {"call_id": call_id, "queue": queue, "position": position.position,
                                                    "context_id": record.context_id}})
        await self._announce(waiter)
        self._spawn(self._announcer(waiter))
        return waiter

    def _reachable_at(self, caller_number: str) -> str | None:
        """The caller's number if the callback policy allows calling it back (for recovery by another node)."""
        try:
            return confirm_number(caller_number, None, self.callback_allowed)
        except ValueError:
            return None

    async def hand_over(self) -> dict[str, str]:
        """The node stops and its drain time is over: each caller still waiting becomes a callback task (when the
        policy allows calling their number back; another node dials it) before the call is hung up."""
        for waiter, _leg in list(self._waiting.values()):
            if waiter.done or waiter.bridged.is_set() or waiter.agent_leg is not None:
                continue  # an agent is being rung or talking: that call runs its course
            called_back = await self.leave(waiter, "callback")
            self.handed_over[waiter.call_id] = "node stopped → " + ("callback queued" if called_back else "no callback")
            log.info("caller handed over", extra={"fields": {"call_id": waiter.call_id, "callback": called_back}})
        return dict(self.handed_over)

    async def leave(self, waiter: CallQueue, reason: str) -> bool:
        """The caller left the queue (hung up, or chose a callback); cancels a ringing agent. True: a callback
        task now keeps their place."""
        if waiter.done:
            return False
        waiter.done = True
        self._waiting.pop(waiter.call_id, None)
        await self.service.forget_callback_number(waiter.call_id)
        if reason == "callback":
            try:
                number = confirm_number(waiter.caller_number, None, self.callback_allowed)
                await self.service.request_callback(waiter.call_id, number)
                log.info("callback requested", extra={"fields": {"call_id": waiter.call_id}})
                return True
            except (AcdError, ValueError) as exc:
                log.warning("callback refused: %s", exc, extra={"fields": {"call_id": waiter.call_id}})
        await self.service.abandon(waiter.call_id)
        if waiter.agent_leg is not None and waiter.agent_leg.state is not CallState.ENDED:
            await waiter.agent_leg.hangup("caller left")  # CANCELs an agent that is still ringing
        return False

    async def _announce(self, waiter: CallQueue) -> None:
        result = await self.service.announcement(waiter.call_id, waiter.lang)
        if result is None:
            return
        position, ewt, sentence = result
        await waiter.events.put(ev.QueueUpdate(position.position, ewt.mid_s if ewt is not None else -1.0,
                                               announcement=sentence, told_s=spoken_range(ewt)))

    async def _announcer(self, waiter: CallQueue) -> None:
        while not waiter.done and not waiter.bridged.is_set():
            await asyncio.sleep(self.announce_every_s)
            if not waiter.done and not waiter.bridged.is_set():
                await self._announce(waiter)

    # ------------------------------------------------------------------ agents
    def agent_uri(self, agent: AgentConfig) -> str | None:
        """Where to ring a SIP agent: their phone's registered Contact (voicebot.sip.registrar), else sip_uri."""
        contact = self.agent_contact(agent.id) if self.agent_contact is not None else None
        return contact or agent.sip_uri

    async def _on_event(self, event: ServiceEvent) -> None:
        if isinstance(event, AssignmentOffered) and event.assignment.node == self.service.node:
            entry = self._waiting.get(event.assignment.call_id)
            if event.assignment.kind == "call" and entry is not None:
                self._spawn(self._ring_agent(entry[0], entry[1], event.assignment, event.agent))
            elif event.assignment.kind == "callback":
                self._spawn(self._call_back(event.assignment, event.agent))

    async def _dial(self, uri: str, headers: list[tuple[str, str]], codec: str = "PCMU",
                    payload_type: int = 0) -> tuple[SipCall, RtpStream] | None:
        """An outbound leg with its own RTP stream; None when it is not answered within the ring timeout."""
        try:
            stream = await RtpStream.open(self.media_host, self.ports, codec, payload_type, self.dtmf_payload_type)
        except (PortsExhausted, OSError):
            return None
        codecs = [codec] + [c for c in ("PCMU", "PCMA") if c != codec]
        offer = build_offer(self.media_host, stream.local_port, codecs, self.dtmf_payload_type)
        ringing: list[SipCall] = []
        try:
            leg = await asyncio.wait_for(
                self.ua.invite(uri, sdp=offer.encode(), headers=headers, on_created=ringing.append),
                self.ring_timeout_s)
        except (CallFailed, asyncio.TimeoutError) as exc:
            if ringing and ringing[0].state is not CallState.ENDED:
                await ringing[0].hangup("no answer")
            await stream.close()
            log.info("outbound leg not answered", extra={"fields": {"uri": uri, "reason": str(exc) or "timeout"}})
            return None
        try:
            negotiated = apply_answer(offer, parse_sdp(leg.remote_sdp))
        except SdpError as exc:
            await leg.hangup("bad SDP answer")
            await stream.close()
            log.warning("outbound leg answered with unusable SDP", extra={"fields": {"uri": uri, "reason": str(exc)}})
            return None
        if negotiated.codec.name != stream.codec.name:
            stream.set_codec(negotiated.codec.name, negotiated.codec.payload_type)
        if self.egress.allows(negotiated.remote_host):
            stream.set_remote(negotiated.remote_host, negotiated.remote_port)
        return leg, stream

    def callback_uri(self, number: str) -> str | None:
        """Where a callback number is dialled: the template (e.g. "sip:{number}@carrier.example"), else None."""
        return self.callback_uri_template.format(number=number) if self.callback_uri_template else None

    async def _call_back(self, assignment: Assignment, agent: AgentConfig) -> None:
        """A due callback: ring the agent first (they see the context), then dial the customer and bridge."""
        number = assignment.callback_number or ""
        agent_uri = self.agent_uri(agent)
        if not agent_uri or not number:
            await self.service.agent_no_answer(assignment.id)
            return
        context_id = assignment.context_id
        headers = [("X-Voicebot-Call-Id", call_id_header(assignment.call_id)),
                   ("User-to-User", user_to_user(context_id)), ("X-Voicebot-Callback", number)]
        log.info("callback: ringing agent", extra={"fields": {"call_id": assignment.call_id, "agent": agent.id}})
        target = self.callback_uri(number)
        if target is None:
            log.error("callback cannot be dialled: no trunk and no queues.callback_uri_template configured",
                      extra={"fields": {"call_id": assignment.call_id}})
            await self.service.callback_failed(assignment.id)
            return
        agent_leg = await self._dial(agent_uri, headers)
        if agent_leg is None:
            await self.service.agent_no_answer(assignment.id)
            return
        customer_leg = await self._dial(target, [("X-Voicebot-Call-Id", call_id_header(assignment.call_id))])
        if customer_leg is None:
            await agent_leg[0].hangup("customer did not answer")
            await agent_leg[1].close()
            await self.service.callback_failed(assignment.id)
            log.info("callback: customer did not answer", extra={"fields": {"call_id": assignment.call_id}})
            return
        await self.service.agent_answered(assignment.id)
        bridge = MediaBridge(customer_leg[1], agent_leg[1])
        log.info("callback connected", extra={"fields": {"call_id": assignment.call_id, "agent": agent.id}})
        try:
            ended = {asyncio.ensure_future(agent_leg[0].ended.wait()),
                     asyncio.ensure_future(customer_leg[0].ended.wait())}
            await asyncio.wait(ended, return_when=asyncio.FIRST_COMPLETED)
            for task in ended:
                task.cancel()
        finally:
            bridge.close()
            for leg, stream in (agent_leg, customer_leg):
                await leg.hangup("callback ended")
                await stream.close()
            await self.service.call_ended(assignment.call_id)
            log.info("callback ended", extra={"fields": {"call_id": assignment.call_id}})

    async def _ring_agent(self, waiter: CallQueue, caller: CallerLeg, assignment: Assignment,
                          agent: AgentConfig) -> None:
        if self.browser_legs is not None and self.browser_legs.answers_for(agent):
            await self.browser_legs.ring(waiter, caller, assignment, agent,
                                         on_connected=lambda: self._waiting.pop(waiter.call_id, None))
            return
        agent_uri = self.agent_uri(agent)
        if not agent_uri:
            await self.service.agent_no_answer(assignment.id)
            return
        try:
            stream = await RtpStream.open(self.media_host, self.ports, caller.stream.codec.name,
                                          caller.stream.payload_type, self.dtmf_payload_type)
        except (PortsExhausted, OSError):
            await self.service.agent_no_answer(assignment.id)
            return
        codecs = [caller.stream.codec.name] + [c for c in ("PCMU", "PCMA") if c != caller.stream.codec.name]
        offer = build_offer(self.media_host, stream.local_port, codecs, self.dtmf_payload_type)
        headers = [("X-Voicebot-Call-Id", call_id_header(waiter.call_id)),
                   ("User-to-User", user_to_user(waiter.context_id)),
                   ("X-Voicebot-Queue", waiter.queue)]
        ringing: list[SipCall] = []
        log.info("ringing agent", extra={"fields": {"call_id": waiter.call_id, "agent": agent.id,
                                                    "uri": agent_uri}})
        try:
            leg = await asyncio.wait_for(
                self.ua.invite(agent_uri, sdp=offer.encode(), headers=headers,
                               on_created=lambda created: (ringing.append(created),
                                                           setattr(waiter, "agent_leg", created))),
                self.ring_timeout_s)
        except (CallFailed, asyncio.TimeoutError) as exc:
            if ringing and ringing[0].state is not CallState.ENDED:
                await ringing[0].hangup("no answer")
            await stream.close()
            reason = f"{exc.status} {exc.reason}" if isinstance(exc, CallFailed) else "no answer"
            log.info("agent did not answer", extra={"fields": {"call_id": waiter.call_id, "agent": agent.id,
                                                               "reason": reason}})
            if not waiter.done:
                await self.service.agent_no_answer(assignment.id)
            return
        if waiter.done or caller.call.state is CallState.ENDED:
            await leg.hangup("caller gone")
            await stream.close()
            await self.service.call_ended(waiter.call_id)
            return
        try:
            negotiated = apply_answer(offer, parse_sdp(leg.remote_sdp))
        except SdpError:
            await leg.hangup("bad SDP")
            await stream.close()
            await self.service.agent_no_answer(assignment.id)
            return
        if negotiated.codec.name != stream.codec.name:
            stream.set_codec(negotiated.codec.name, negotiated.codec.payload_type)  # the bridge transcodes
        if self.egress.allows(negotiated.remote_host):
            stream.set_remote(negotiated.remote_host, negotiated.remote_port)
        waiter.agent_leg, waiter.agent_id = leg, agent.id
        self._waiting.pop(waiter.call_id, None)
        await self.service.agent_answered(assignment.id)
        await self.service.forget_callback_number(waiter.call_id)
        bridge = MediaBridge(caller.stream, stream)
        waiter.bridged.set()
        await waiter.events.put(ev.AgentAnswered(agent.id))
        log.info("agent connected", extra={"fields": {"call_id": waiter.call_id, "agent": agent.id}})
        try:
            ended = {asyncio.ensure_future(caller.call.ended.wait()), asyncio.ensure_future(leg.ended.wait())}
            await asyncio.wait(ended, return_when=asyncio.FIRST_COMPLETED)
            for task in ended:
                task.cancel()
        finally:
            bridge.close()
            waiter.done = True
            await leg.hangup("caller hung up")
            await caller.call.hangup("agent hung up")
            await stream.close()
            await self.service.call_ended(waiter.call_id)
            log.info("agent call ended", extra={"fields": {"call_id": waiter.call_id, "agent": agent.id}})


class MediaBridge:
    """Relays audio between two RTP streams, frame by frame on the media ticker (recording keeps running)."""

    def __init__(self, a: RtpStream, b: RtpStream) -> None:
        self.a, self.b = a, b
        a.stop_playback()
        a.on_audio(self._relay_to(b))
        b.on_audio(self._relay_to(a))

    @staticmethod
    def _relay_to(target: RtpStream):  # type: ignore[no-untyped-def]
        def relay(frame: np.ndarray) -> None:
            target.play_live(np.asarray(frame, dtype=np.int16), MAX_RELAY_BACKLOG)
        return relay

    def close(self) -> None:
        self.a.on_audio(None)
        self.b.on_audio(None)
