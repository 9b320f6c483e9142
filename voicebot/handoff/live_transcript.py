"""Live transcript of bridged calls (issue 19): both legs recognised as they speak, each line labelled caller or
agent, redacted with the compliance redactor, written to the call's record as it happens (through the call's
transcript sink, so the live quality checks judge the agent's words as they judge the bot's, and the lines' start
and end times for talk-over and silence on the bridge), and pushed to the
agent's desktop and to the supervisors. The caller's lines also drive agent assist: knowledge cards for the agent.

CPU is bounded twice: only queues with ``live_transcript: true`` are followed, and recognition goes through
:class:`~voicebot.handoff.live_asr.LiveAsr`, which yields the speech workers to the bot's own turns and drops
(counting) what it cannot recognise in time. Voice activity detection runs on the relay's frames (webrtcvad,
microseconds a frame); only finished utterances cost a worker.

Messages (the agent's desktop socket, and every supervisor socket with ``agent`` added):
    {"type": "transcript", "call_id", "who": "caller"|"agent", "text", "t"}
    {"type": "assist", "call_id", "cards": [{"id", "version", "title", "short_answer", "tags", "score"}]}  (agent)
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from voicebot.compliance.redact import redact
from voicebot.handoff.assist import AgentAssist, HitLike
from voicebot.handoff.live_asr import LiveAsr, LiveJob
from voicebot.handoff.live_metrics import LiveTotals
from voicebot.speech.segmenter import StreamSegmenter

__all__ = ["BridgedCall", "CallSinks", "LiveCall", "LiveTranscripts", "Publisher", "SIDES"]

log = logging.getLogger("voicebot.handoff.live")

SIDES = {"a": "caller", "b": "agent"}  # ChannelBridge(caller, agent_leg)
PRIORITY = {"agent": 1, "caller": 0}  # the agent's lines first: their quality alerts must reach supervisors fast
Sink = Callable[[dict[str, Any]], None]
Search = Callable[[str, str], Sequence[HitLike]]  # (query, lang) -> hits, best first


@dataclass(frozen=True)
class BridgedCall:
    call_id: str
    queue: str
    agent_id: str
    lang: str
    kind: str  # the agent's leg: "sip" or "webrtc"
    dialplan: str | None = None  # a callback's: the dialplan its call ran ("" unknown); None: its session runs


class Publisher(Protocol):
    async def send_agent(self, agent_id: str, message: dict[str, Any]) -> None: ...

    async def alert_supervisors(self, message: dict[str, Any]) -> None: ...


class CallSinks:
    """Each running call's transcript sink (record + live quality checks), by call id, held weakly: the entry
    goes when the call's session does."""

    def __init__(self) -> None:
        self._sinks: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()

    def attach(self, call_id: str, sink: Sink) -> None:
        self._sinks[call_id] = sink

    def get(self, call_id: str) -> Sink | None:
        return self._sinks.get(call_id)


@dataclass
class LiveCall:
    """One bridged call followed live; ``on_audio`` is the bridge's tap."""

    call: BridgedCall
    asr: LiveAsr
    sink: Sink
    publisher: Publisher | None = None
    assist: AgentAssist | None = None
    search: Callable[[str, str], Awaitable[Sequence[HitLike]]] | None = None
    clock: Callable[[], float] = time.time
    totals: LiveTotals | None = None  # the process's counters (/metrics)
    lines: int = 0
    dropped: int = 0
    cards: int = 0
    closed: bool = False
    finished: bool = False  # the call's record is being closed: a line arriving now is dropped, not written
    _segmenters: dict[str, StreamSegmenter] = field(default_factory=dict)
    _outstanding: int = 0
    _settled: asyncio.Event = field(default_factory=asyncio.Event)

    def on_audio(self, side: str, pcm: np.ndarray, rate: int) -> None:
        """A relayed frame of ``side`` ("a": the caller, "b": the agent)."""
        speaker = SIDES.get(side)
        if speaker is None or self.closed:
            return
        segmenter = self._segmenters.get(speaker)
        if segmenter is None or segmenter.rate != rate:
            segmenter = self._segmenters[speaker] = StreamSegmenter(rate)
        for segment in segmenter.feed(pcm):
            end = self.clock()
            # the quality checks hear that someone spoke now, before (and whatever) the recognition says
            self.sink({"t": round(end, 3), "spoke": speaker, "start": round(end - segment.duration_s, 3)})
            self._outstanding += 1
            self._settled.clear()
            self.asr.submit(LiveJob(segment.audio, self.call.lang,
                                    on_text=self._deliver(speaker, end - segment.duration_s, end),
                                    on_drop=self._dropped, priority=PRIORITY[speaker]))

    def _deliver(self, speaker: str, start: float, end: float) -> Callable[[str], Awaitable[None]]:
        async def deliver(text: str) -> None:
            try:
                await self.heard(speaker, text, start, end)
            finally:
                self._settle()
        return deliver

    def _dropped(self, reason: str) -> None:
        self._count_drop(reason)
        self._settle()

    def _count_drop(self, reason: str) -> None:
        self.dropped += 1
        if self.totals is not None:
            self.totals.drop(reason)

    def _settle(self) -> None:
        self._outstanding = max(0, self._outstanding - 1)
        if self._outstanding == 0:
            self._settled.set()

    async def heard(self, speaker: str, text: str, start: float, end: float) -> None:
        """A recognised line: redacted, recorded (and quality-checked), pushed; the caller's feed assist."""
        line = redact(text.strip())
        if not line:
            return
        if self.finished:  # too late for the call's record (closed): counted, never written after call_ended
            self._count_drop("record closed")
            return
        self.lines += 1
        if self.totals is not None:
            self.totals.lines += 1
        self.sink({"t": round(end, 3), "who": speaker, "text": line, "start": round(start, 3), "live": True})
        message = {"type": "transcript", "call_id": self.call.call_id, "who": speaker, "text": line,
                   "t": round(end, 3)}
        if self.publisher is not None:
            await self.publisher.send_agent(self.call.agent_id, message)
            await self.publisher.alert_supervisors({**message, "agent": self.call.agent_id})
        if speaker == "caller" and self.assist is not None and self.search is not None:
            await self._assist(line)

    async def _assist(self, line: str) -> None:
        assert self.assist is not None and self.search is not None
        hits = await self.search(self.assist.query(line), self.call.lang)
        cards = self.assist.cards(hits)
        if not cards:
            return
        self.cards += len(cards)
        self.sink({"t": round(self.clock(), 3), "event": "assist",
                   "articles": [{"id": c["id"], "version": c["version"], "score": c["score"]} for c in cards]})
        if self.publisher is not None:
            await self.publisher.send_agent(self.call.agent_id, {"type": "assist", "call_id": self.call.call_id,
                                                                 "cards": cards})

    def close(self) -> None:
        """The bridge ended: no new utterances (those already queued are still recognised and written); a sink
        that runs timed rules of its own (a callback's: calls.quality_watch.FollowedSink) stops them."""
        self.closed = True
        release = getattr(self.sink, "close", None)
        if callable(release):
            release()

    async def finish(self, max_wait_s: float = 5.0) -> None:
        """Before the call's record closes: wait (bounded) for the utterances still being recognised, so the
        last lines land before ``call_ended``; whatever comes later is dropped and counted."""
        self.close()
        if self._outstanding:
            try:
                await asyncio.wait_for(self._settled.wait(), max_wait_s)
            except asyncio.TimeoutError:
                pass
        self.finished = True
        log.info("live transcript ended", extra={"fields": {
            "call_id": self.call.call_id, "agent": self.call.agent_id, "lines": self.lines,
            "dropped": self.dropped, "cards": self.cards}})


@dataclass
class QueueFollow:
    """What one queue's bridged calls get: followed at all, and assist from which collection at what score."""

    live_transcript: bool = False
    assist: bool = True
    assist_collection: str | None = None
    assist_min_score: float = 0.3


class LiveTranscripts:
    """The server's follower of bridged calls: ``start_call`` is HandoffManager.on_bridged."""

    def __init__(self, asr: LiveAsr, *, follow: Callable[[str], QueueFollow], sink_for: Callable[[BridgedCall], Sink],
                 publisher: Callable[[], Publisher | None], knowledge: Callable[[], Any] | None = None) -> None:
        self.asr = asr
        self.follow = follow
        self.sink_for = sink_for
        self.publisher = publisher
        self.knowledge = knowledge
        self.totals = LiveTotals()

    def start_call(self, call: BridgedCall) -> LiveCall | None:
        follow = self.follow(call.queue)
        if not follow.live_transcript:
            return None
        self.asr.start()
        search = self._searcher(follow) if follow.assist and self.knowledge is not None else None
        live = LiveCall(call, self.asr, self.sink_for(call), self.publisher(),
                        AgentAssist(min_score=follow.assist_min_score) if search is not None else None, search,
                        totals=self.totals)
        self.totals.calls += 1
        # the record notes it, and the live quality checks may now judge silence on the bridge (compliance.timing)
        live.sink({"t": round(live.clock(), 3), "event": "live_transcript", "queue": call.queue})
        log.info("live transcript started", extra={"fields": {
            "call_id": call.call_id, "agent": call.agent_id, "queue": call.queue, "assist": search is not None}})
        return live

    def _searcher(self, follow: QueueFollow) -> Callable[[str, str], Awaitable[Sequence[HitLike]]]:
        knowledge = self.knowledge
        assert knowledge is not None

        async def search(query: str, lang: str) -> Sequence[HitLike]:
            kb = knowledge()
            if kb is None or not query:
                return []
            # an encoder pass costs milliseconds: in a worker thread, as the dialplan's answers do
            hits: Sequence[HitLike] = await asyncio.get_running_loop().run_in_executor(
                None, lambda: kb.search(query, lang, collection=follow.assist_collection, k=3))
            return hits

        return search


class SpeechLike(Protocol):
    def busy(self) -> bool: ...

    async def transcribe(self, pcm16k: np.ndarray, lang: str | None) -> Any: ...


def follow_bridged_calls(queues: Any, speech: SpeechLike | None, *, sink_for: Callable[[BridgedCall], Sink],
                         publisher: Callable[[], Publisher | None],
                         knowledge: Callable[[], Any] | None = None) -> LiveTranscripts | None:
    """The server's follower for ``queues`` (a QueuesConfig): None when no queue turns live_transcript on or there
    is no speech recognition to do it with."""
    by_name = {q.name: QueueFollow(q.live_transcript, q.assist, q.assist_collection, q.assist_min_score)
               for q in queues.queues}
    if speech is None or not any(f.live_transcript for f in by_name.values()):
        return None

    async def transcribe(pcm16k: np.ndarray, lang: str | None) -> str:
        return str((await speech.transcribe(pcm16k, lang or None)).text)  # "": not known (a callback's lost context)

    return LiveTranscripts(LiveAsr(transcribe, speech.busy), follow=lambda name: by_name.get(name, QueueFollow()),
                           sink_for=sink_for, publisher=publisher, knowledge=knowledge)
