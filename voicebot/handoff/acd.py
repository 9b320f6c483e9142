"""The ACD adapter: queue membership per call, agent ringing with context headers, the bridged agent call.

The ACD itself (voicebot.queues) is pure and shared (memory or Redis); this module is its side on one node. Callers
are any :class:`~voicebot.channels.base.LiveLeg` (a SIP phone or a browser). It rings the agent the ACD picked — a
SIP phone through the :class:`~voicebot.handoff.dialer.OutboundDialer` (X-Voicebot-Call-Id + User-to-User carrying
the context id), or a browser agent on their desktop page (voicebot.handoff.browser) — relays audio between the
two legs through voicebot (so recording continues), and reports answers, no-answers and hang-ups back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voicebot.channels.base import LiveLeg
from voicebot.compliance.redact import redact, redact_obj
from voicebot.dialplan import events as ev
from voicebot.queues.acd import AcdError
from voicebot.queues.callbacks import confirm_number
from voicebot.queues.context import CallContextRecord, call_id_header, user_to_user
from voicebot.queues.ewt import spoken_range
from voicebot.queues.models import AgentConfig
from voicebot.queues.service import AcdService, AssignmentOffered, ServiceEvent
from voicebot.queues.state import Assignment
from voicebot.handoff.bridge import ChannelBridge
from voicebot.handoff.dialer import DialFailed, OutboundDialer, codec_preference
from voicebot.rtp.ports import PortAllocator
from voicebot.sip.call import CallState, SipCall
from voicebot.sip.sdp import Encryption
from voicebot.sip.transport import EgressPolicy
from voicebot.sip.ua import UserAgent

if TYPE_CHECKING:
    from voicebot.handoff.browser import BrowserAgentLegs
    from voicebot.handoff.live_transcript import BridgedCall, LiveCall

log = logging.getLogger("voicebot.handoff")


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
    agent_leg: SipCall | None = None  # the SIP agent being rung (CANCELled if the caller leaves)
    agent_id: str = ""


class HandoffManager:
    """Joins callers to the ACD and connects them to agents; one per server process."""

    def __init__(self, ua: UserAgent, ports: PortAllocator, service: AcdService, *, media_host: str,
                 dtmf_payload_type: int, egress: EgressPolicy, ring_timeout_s: float = 20.0,
                 announce_every_s: float = 30.0, callback_allowed: tuple[str, ...] = ("*",),
                 callback_uri_template: str | None = None, dialer: OutboundDialer | None = None,
                 media_encryption: Encryption = "none", customer_encryption: Encryption | None = None) -> None:
        """``media_encryption``: the SRTP policy of offers to agents without their own; ``customer_encryption``: of
        callback calls to customers (the trunk's policy; default media_encryption)."""
        self.ua = ua
        self.service = service
        self.dialer = dialer or OutboundDialer(ua, ports, media_host=media_host, dtmf_payload_type=dtmf_payload_type,
                                               egress=egress)
        self.ring_timeout_s = ring_timeout_s
        self.announce_every_s = announce_every_s
        self.callback_allowed = callback_allowed
        self.callback_uri_template = callback_uri_template
        self.media_encryption: Encryption = media_encryption
        self.customer_encryption: Encryption = customer_encryption or media_encryption
        self.browser_legs: BrowserAgentLegs | None = None  # set by the server: agents answering on their page
        self.agent_contact: Callable[[str], str | None] | None = None  # agent id -> registered phone Contact
        # set by the server: a bridged call starts (live transcript, agent assist); None when it is not followed
        self.on_bridged: Callable[[BridgedCall], LiveCall | None] | None = None
        # set by the server: the dialplan a recorded call ran (a blocking read of the call records: run in a
        # thread before a callback is dialled, so its live lines are judged by that dialplan's policies)
        self.recorded_dialplan: Callable[[str], str] | None = None
        self._waiting: dict[str, tuple[CallQueue, LiveLeg]] = {}
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
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ callers
    async def join(self, leg: LiveLeg, queue: str, skills: tuple[str, ...], priority: int,
                   context: dict[str, Any], transcript: list[dict[str, Any]], caller_number: str,
                   lang: str) -> CallQueue:
        """Queue the caller with their context; raises QueueJoinError with a reason the dialplan can route on."""
        call_id = leg.call_id
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

    def agent_encryption(self, agent: AgentConfig) -> Encryption:
        """The SRTP policy of the offer that rings ``agent``: their own, else the server's."""
        return agent.media_encryption or self.media_encryption

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
        # what following the callback live needs is read before anyone is dialled: no store round trip between
        # the bridge and its transcript (first words), none that a cancellation could interrupt with legs open
        lang = await self._caller_lang(context_id) if self.on_bridged is not None else ""
        dialplan = await self._recorded_dialplan(assignment.call_id) if self.on_bridged is not None else ""
        try:
            agent_leg = await self.dialer.dial(agent_uri, headers, timeout_s=self.ring_timeout_s,
                                               encryption=self.agent_encryption(agent))
        except DialFailed:
            await self.service.agent_no_answer(assignment.id)
            return
        try:
            customer_leg = await self.dialer.dial(target, [("X-Voicebot-Call-Id", call_id_header(assignment.call_id))],
                                                  timeout_s=self.ring_timeout_s, encryption=self.customer_encryption)
        except DialFailed:
            await agent_leg.end("customer did not answer")
            await agent_leg.close()
            await self.service.callback_failed(assignment.id)
            log.info("callback: customer did not answer", extra={"fields": {"call_id": assignment.call_id}})
            return
        bridge = ChannelBridge(customer_leg, agent_leg)
        live: LiveCall | None = None
        try:  # from here both legs are up: whatever happens (a cancellation too) the finally ends them
            await self.service.agent_answered(assignment.id)
            # followed live like an inbound bridged call (the queue's switch decides), in the caller's language,
            # judged by the policies of the dialplan the call ran
            live = self._follow(bridge, assignment.call_id, assignment.queue, agent.id, lang, "sip", dialplan)
            log.info("callback connected", extra={"fields": {"call_id": assignment.call_id, "agent": agent.id}})
            await bridge.wait_ended()
        finally:
            bridge.close()
            if live is not None:
                live.close()
            await agent_leg.end("callback ended")
            await customer_leg.end("callback ended")  # nobody is left on a dead line while the transcript settles
            if live is not None:  # the last lines reach the record before the callback is reported ended
                await live.finish()
            for leg in (agent_leg, customer_leg):
                await leg.close()
            await self.service.call_ended(assignment.call_id)
            log.info("callback ended", extra={"fields": {"call_id": assignment.call_id}})

    async def _ring_agent(self, waiter: CallQueue, caller: LiveLeg, assignment: Assignment,
                          agent: AgentConfig) -> None:
        """Ring the agent the ACD offered (SIP phone or desktop page); once answered, bridge the two legs."""
        agent_leg: LiveLeg | None
        if self.browser_legs is not None and self.browser_legs.answers_for(agent):
            agent_leg, kind = await self.browser_legs.ring(waiter, assignment, agent), "webrtc"
        else:
            agent_leg, kind = await self._ring_sip_agent(waiter, assignment, agent, caller.wire_codec), "sip"
        if agent_leg is None:
            return
        if waiter.done or caller.ended.is_set():
            await agent_leg.end("caller gone")
            await agent_leg.close()
            await self.service.call_ended(waiter.call_id)
            return
        await self._talk(waiter, caller, agent_leg, kind, assignment, agent)

    async def _ring_sip_agent(self, waiter: CallQueue, assignment: Assignment, agent: AgentConfig,
                              codec: str | None) -> LiveLeg | None:
        """The agent's phone answered (offered the caller's codec first), or None after reporting the no-answer."""
        agent_uri = self.agent_uri(agent)
        if not agent_uri:
            await self.service.agent_no_answer(assignment.id)
            return None
        headers = [("X-Voicebot-Call-Id", call_id_header(waiter.call_id)),
                   ("User-to-User", user_to_user(waiter.context_id)),
                   ("X-Voicebot-Queue", waiter.queue)]
        log.info("ringing agent", extra={"fields": {"call_id": waiter.call_id, "agent": agent.id,
                                                    "uri": agent_uri}})
        try:
            return await self.dialer.dial(agent_uri, headers, codec_preference(codec), timeout_s=self.ring_timeout_s,
                                          encryption=self.agent_encryption(agent),
                                          on_created=lambda created: setattr(waiter, "agent_leg", created))
        except DialFailed as exc:
            reason = "no answer" if exc.status == 408 else str(exc)
            log.info("agent did not answer", extra={"fields": {"call_id": waiter.call_id, "agent": agent.id,
                                                               "reason": reason}})
            if not waiter.done:
                await self.service.agent_no_answer(assignment.id)
            return None

    async def _talk(self, waiter: CallQueue, caller: LiveLeg, agent_leg: LiveLeg, kind: str,
                    assignment: Assignment, agent: AgentConfig) -> None:
        """The bridged call, until either side hangs up; then both legs end and the agent goes to wrap-up."""
        try:
            await self.service.agent_answered(assignment.id)
        except AcdError as exc:  # the ACD moved on meanwhile (withdrawn, caller left)
            log.warning("agent answer not applied: %s", exc, extra={"fields": {"call_id": waiter.call_id}})
            await agent_leg.end("withdrawn")
            await agent_leg.close()
            return
        waiter.agent_id = agent.id
        self._waiting.pop(waiter.call_id, None)
        await self.service.forget_callback_number(waiter.call_id)
        bridge = ChannelBridge(caller, agent_leg)
        live = self._follow(bridge, waiter.call_id, waiter.queue, agent.id, waiter.lang, kind)
        waiter.bridged.set()
        await waiter.events.put(ev.AgentAnswered(agent.id))
        log.info("agent connected", extra={"fields": {"call_id": waiter.call_id, "agent": agent.id, "leg": kind,
                                                      "agent_srtp": _srtp_suite(agent_leg),
                                                      "caller_srtp": _srtp_suite(caller)}})
        hung_up_by = "caller"
        try:
            hung_up_by = "caller" if await bridge.wait_ended() is caller else "agent"
        finally:
            bridge.close()
            if live is not None:
                live.close()
            waiter.done = True
            await agent_leg.end("caller hung up")
            if live is not None:  # the last lines reach the record before the caller's leg ends (and closes it)
                await live.finish()
            await caller.end("agent hung up")
            await agent_leg.close()
            await self.service.call_ended(waiter.call_id)
            log.info("agent call ended", extra={"fields": {
                "call_id": waiter.call_id, "agent": agent.id, "leg": kind, "hung_up_by": hung_up_by,
                "frames_to_agent": bridge.frames_a_to_b, "frames_to_caller": bridge.frames_b_to_a}})

    async def _caller_lang(self, context_id: str) -> str:
        """The language the customer spoke when they asked for the callback (their call's context record)."""
        try:
            context = await self.service.get_context(context_id)
        except Exception:  # noqa: BLE001 - a store hiccup costs the transcript's language hint, not the call
            log.warning("callback: no call context", extra={"fields": {"context_id": context_id}})
            context = None
        return str((context or {}).get("lang") or "")

    async def _recorded_dialplan(self, call_id: str) -> str:
        """The dialplan the followed-up call ran, from its record ("" if unknown), read in a worker thread."""
        if self.recorded_dialplan is None:
            return ""
        try:
            return await asyncio.to_thread(self.recorded_dialplan, call_id)
        except Exception:  # noqa: BLE001 - a store hiccup costs the dialplan's own rules, not the call
            log.warning("callback: call record not read", extra={"fields": {"call_id": call_id}})
            return ""

    def _follow(self, bridge: ChannelBridge, call_id: str, queue: str, agent_id: str, lang: str,
                kind: str, dialplan: str | None = None) -> LiveCall | None:
        """The bridged call's live transcript (when the server follows bridged calls and the queue wants it):
        inbound calls answered by an agent and the callbacks the ACD places alike (``dialplan``: a callback's,
        from its call's record; None for a call whose session runs)."""
        if self.on_bridged is None:
            return None
        from voicebot.handoff.live_transcript import BridgedCall

        try:
            live = self.on_bridged(BridgedCall(call_id, queue, agent_id, lang, kind, dialplan))
        except Exception:  # noqa: BLE001 - following the call must never cost the call itself
            log.exception("live transcript not started", extra={"fields": {"call_id": call_id}})
            return None
        if live is not None:
            bridge.tap = live.on_audio
        return live


def _srtp_suite(leg: LiveLeg) -> str | None:
    """The SRTP suite of a SIP leg's media (None: plain RTP, or a WebRTC leg, whose DTLS-SRTP aiortc keeps)."""
    stream = getattr(leg, "stream", None)
    return stream.stats.get("srtp") if stream is not None else None
