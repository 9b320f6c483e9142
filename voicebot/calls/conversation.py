"""DialplanSession: runs the pure dialplan interpreter over a Channel with speech, DTMF, barge-in and timers.

Events in (Heard, Keys, NoInput, NoMatch, WebhookResult, TransferFailed, Hangup), actions out (Say, Listen,
Webhook, Transfer, Enqueue, SetRecording, Hangup, LogEvent). This module owns the clocks the interpreter must not
have: no-input timers, inter-digit timers, barge-in, speculative recognition during the end-of-speech hangover.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol, Sequence

import numpy as np

from voicebot.calls.events import CallEvents, Line, Measured
from voicebot.channels.base import Channel, Dtmf, HungUp
from voicebot.compliance.redact import mask_keyed, redact, redact_obj
from voicebot.dialplan import actions as act
from voicebot.dialplan import events as ev
from voicebot.dialplan.early_endpoint import EarlyEndpoint, decide
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.slots import GRAMMAR_ENTITY
from voicebot.nlu.base import NluEngine, NluError, NluResult
from voicebot.nlu.offloop import parse_off_loop
from voicebot.speech.endpointer import (HangoverCancelled, HangoverStarted, ListenSettings, MaxUtterance,
                                        SpeechEnded, SpeechStarted)
from voicebot.speech.grammar import Grammar
from voicebot.speech.services import Utterance, split_sentences, trim_silence
from voicebot.speech.speculation import Speculation
from voicebot.speech.vad import FrameVad, SpeechDetector
from voicebot.speech.workers import EngineCrashed

log = logging.getLogger("voicebot.calls.conversation")

AUDIO_RATE = 16000
INTER_DIGIT_TIMEOUT_S = 3.0
SENTENCE_GAP_MS = 200  # pause between two sentences of a prompt (callers talk into pauses of 0.8 s and more)
NO_INPUT_AFTER_PROMPT_S = 5.0
# Silence after which a speculative decode starts (bench/turn_latency.py, Whisper base on 10 s: 200 ms gave p50
# 720 / p95 882 ms, 100 ms 600 / 740 ms with the same 1.57 decodes a turn, 40 ms 670 / 977 ms: 3.1 decodes a turn
# and stale ones in the way).
SPECULATION_START_MS = 100
# A digit string read by a person has pauses of up to ~1.2 s (FSDD speakers read one digit at a time): a digits
# grammar's turn waits this long; a complete string still ends it early (the early endpoint, `decide`).
DIGITS_END_SILENCE_MS = 1500
MIN_ASR_CONFIDENCE = 0.4  # below this the recogniser is guessing (noise, another language): treat as no match
FRAME_QUEUE_LIMIT = 50 * 60  # one minute of 20 ms frames
PREROLL_FRAMES = 50 * 10  # caller audio from before a listen opens that is still heard (10 s of 20 ms frames)
TALKING_FRAMES = 10  # voiced frames in a row (200 ms) that mean the caller talks while the prompt is synthesised
SILENCE_RMS = 60.0  # ~ -55 dBFS: quieter caller frames are silence (ends webrtcvad's hangover on a quiet line)
QUEUE_SAFETY_WAKE_S = 5.0  # a waiting caller is woken by events; this only bounds a missed one


class Speech(Protocol):
    async def synthesize(self, text: str, lang: str | None, rate: int) -> np.ndarray: ...

    async def transcribe(self, pcm16k: np.ndarray, lang: str | None, likely: str | None = None,
                         hints: Sequence[str] = (), grammar: Grammar | None = None) -> Utterance: ...


@dataclass
class TurnTiming:
    """Where the time of one caller turn went (milliseconds), for the call record and benchmarks."""

    endpoint_ms: float = 0.0
    asr_ms: float = 0.0
    nlu_ms: float = 0.0
    tts_first_ms: float = 0.0  # turn end -> first reply audio queued (interpreter, webhooks, TTS)
    speculative_hit: bool = False
    early: bool = False  # ended by semantic endpointing (endpoint_ms of silence instead of end_silence_ms)
    rejoined: bool = False  # an early turn's words with the speech that resumed within its hangover
    asr_decodes: int = 0  # recogniser runs for this turn (speculative ones included)


@dataclass
class Transcript:
    """The call's conversation as text, sensitive input masked; each line and measurement is also published on the
    call's event bus (voicebot.calls.events: the call record, quality checks and captions observe it)."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    events: CallEvents = field(default_factory=CallEvents)

    def add(self, who: str, text: str, **extra: Any) -> None:
        """Record one line; card numbers, IDs, phone numbers and e-mails are masked before it is kept."""
        line = Line(round(time.time(), 3), who, redact(text), redact_obj(extra))
        self.entries.append(line.entry())
        self.events.publish(line)

    def measure(self, event: str, **figures: float) -> None:
        """A measurement for the call record only (numbers: nothing to redact), not a line of the conversation."""
        self.events.publish(Measured(round(time.time(), 3), event, figures))


@dataclass(frozen=True)
class EarlyTurn:
    """A turn ended early (semantic endpointing), while the caller might still go on: speech that resumes within
    what was left of its hangover (`window_ms` after the commit) belongs to it, not to the next question."""

    state: Any  # the interpreter's state before the turn's event: the joined words are handled from here again
    audio: np.ndarray  # what the turn heard
    listen: act.Listen  # the listen it answered
    window_ms: float  # the listen's end silence less the silence that had already passed at the commit


REJOIN_ACTIONS = (act.Say, act.Listen, act.LogEvent)  # a reply made only of these can be taken back


WebhookRunner = Callable[[act.Webhook], Awaitable[ev.WebhookResult]]
KnowledgeRunner = Callable[[act.Answer], Awaitable[ev.KnowledgeResult]]
TransferPolicy = Callable[[str], bool]


class QueueMembership(Protocol):
    """A caller's place in the ACD (voicebot.handoff.CallQueue)."""

    events: asyncio.Queue[ev.Event]
    bridged: asyncio.Event
    done: bool


class QueuePort(Protocol):
    """The session's door to the human queues (voicebot.handoff, bound to this call by the server)."""

    async def join(self, action: act.Enqueue, transcript: list[dict[str, Any]], lang: str) -> QueueMembership: ...

    async def leave(self, membership: QueueMembership, reason: str) -> None: ...


class DialplanSession:
    """One call's conversation. ``run()`` returns when the call ends."""

    def __init__(self, channel: Channel, interpreter: Interpreter, context: ev.CallContext, speech: Speech,
                 nlu: NluEngine | None, *, webhooks: WebhookRunner | None = None,
                 transfer_allowed: TransferPolicy = lambda _target: False,
                 on_recording: Callable[[bool], None] | None = None, play_rate: int = 16000,
                 queues: QueuePort | None = None, hold_audio: np.ndarray | None = None,
                 knowledge: KnowledgeRunner | None = None, events: CallEvents | None = None) -> None:
        self.channel = channel
        self.interpreter = interpreter
        self.context = context
        self.speech = speech
        self.nlu = nlu
        self.webhooks = webhooks
        self.knowledge = knowledge
        self.transfer_allowed = transfer_allowed
        self.on_recording = on_recording
        self.play_rate = play_rate
        self.queues = queues
        self.hold_audio = hold_audio
        self._hold_playing = False  # hold audio is what plays now: the next prompt replaces it once it is ready
        self.membership: QueueMembership | None = None
        self.bridged = False
        self._audio_attached = False
        self.lang = "en-US"
        self.transcript = Transcript(events=events if events is not None else CallEvents(channel.call_id))
        self.turns: list[TurnTiming] = []
        self._turn_ended: float | None = None  # perf_counter() when the last speech turn ended (until its reply)
        self.outcome = ""
        self.sensitive = False
        self._frames: deque[np.ndarray] = deque(maxlen=FRAME_QUEUE_LIMIT)
        self._wake = asyncio.Event()  # audio frame, key or hang-up arrived
        self._control = asyncio.Event()  # key or hang-up arrived (not set by audio)
        self._pending_keys: deque[str] = deque()
        self._hung_up = False
        self._barge_in = "speech"
        self._vad = FrameVad(aggressiveness=2, sample_rate=AUDIO_RATE, energy_floor=SILENCE_RMS)
        self._prompt_vad = FrameVad(aggressiveness=2, sample_rate=AUDIO_RATE, energy_floor=SILENCE_RMS)
        self._scanned = 0  # frames of self._frames already checked by _caller_talking
        self._quiet_seen = True  # no turn yet: a caller who talks from the answer on cuts the first prompt
        self.engine_failures = 0
        languages = getattr(interpreter.dialplan, "languages", ["en-US"])
        # Several languages and a multilingual recogniser: let Whisper tell en from zh on every utterance.
        self.detect_language = len({lang.split("-")[0] for lang in languages}) > 1 and getattr(
            speech, "multilingual", False)
        self._caller_language: str | None = None  # what the caller last spoke (a hint when detecting)
        self._committed_early: tuple[np.ndarray, act.Listen, float] | None = None  # the last turn, if ended early
        self._resume: EarlyTurn | None = None  # the early turn the next listen's first speech may still join
        self._rejoin: Any = None  # the state the event being returned must be handled from (a rejoined turn)

    # ------------------------------------------------------------------ main loop
    async def run(self) -> str:
        self.channel.on_audio(self._on_audio)
        self._audio_attached = True
        # One reader for the whole call: channel events are never read by a task that might be cancelled.
        reader = asyncio.ensure_future(self._read_channel_events())
        state, actions = self.interpreter.start(self.context)
        try:
            while True:
                event = await self._perform(actions)
                if event is None:
                    break
                if self._rejoin is not None:  # the early turn's words and the rest: its reply is taken back
                    state, self._rejoin = self._rejoin, None
                before = state
                state, actions = self.interpreter.handle(state, event)
                self._resume = self._resumable(before, actions)
        finally:
            reader.cancel()
            if self.membership is not None and not self.membership.done and not self.bridged:
                await self.queues.leave(self.membership, "abandon")  # type: ignore[union-attr]
            if not self.bridged and self._audio_attached:  # a bridge relays the caller's audio: leave it alone
                self.channel.on_audio(None)
        return self.outcome

    def _resumable(self, before: Any, actions: list[act.Action]) -> EarlyTurn | None:
        """The turn just handled, when it ended early and its reply only speaks and listens (nothing done yet that
        could not be taken back if the caller goes on within the hangover)."""
        committed, self._committed_early = self._committed_early, None
        if committed is None or not actions or not isinstance(actions[-1], act.Listen):
            return None
        if not all(isinstance(action, REJOIN_ACTIONS) for action in actions):
            return None
        audio, listen, window_ms = committed
        return EarlyTurn(before, audio, listen, window_ms) if window_ms > 0 else None

    def _on_audio(self, frame: np.ndarray) -> None:
        """Ticker context: only enqueue (the session task does the work)."""
        self._frames.append(frame)
        self._wake.set()

    async def _read_channel_events(self) -> None:
        while True:
            event = await self.channel.next_event(None)
            if isinstance(event, Dtmf):
                self._pending_keys.append(event.digit)
            elif isinstance(event, HungUp):
                self._hung_up = True
            self._control.set()
            self._wake.set()
            if self._hung_up:
                return

    async def _perform(self, actions: list[act.Action]) -> ev.Event | None:
        """Carry out actions in order; return the event that answers the last one (None: the call is over)."""
        for index, action in enumerate(actions):
            if self._hung_up:
                return None
            if isinstance(action, act.Say):
                await self._say(action)
            elif isinstance(action, act.Listen):
                return await self._listen(action)
            elif isinstance(action, act.Webhook):
                return await self._webhook(action)
            elif isinstance(action, act.Answer):
                return await self._answer(action)
            elif isinstance(action, act.Transfer):
                return await self._transfer(action)
            elif isinstance(action, act.Enqueue):
                return await self._enqueue(action)
            elif isinstance(action, act.LeaveQueue):
                if self.membership is not None and self.queues is not None:
                    await self.queues.leave(self.membership, action.reason)
                    self.transcript.add("system", f"left the queue ({action.reason})", event="queue_left",
                                        reason=action.reason)
                self.membership = None
            elif isinstance(action, act.SetRecording):
                self.sensitive = action.paused
                if self.on_recording is not None:
                    self.on_recording(action.paused)
            elif isinstance(action, act.Hangup):
                await self._wait_prompts()
                self.outcome = action.reason
                await self.channel.hangup()
                return None
            elif isinstance(action, act.LogEvent):
                self.transcript.add("event", action.kind, **{k: v for k, v in action.data.items()
                                                             if isinstance(v, (str, int, float, bool))})
            del index
        if self.bridged:
            return await self._stay_bridged()
        if self.membership is not None and not self.membership.done:
            return await self._queue_wait()
        # Actions ended without a Listen/Hangup: nothing will happen any more — end the call politely.
        await self._wait_prompts()
        self.outcome = self.outcome or "dialplan ended"
        await self.channel.hangup()
        return None

    # ------------------------------------------------------------------ output
    async def _say(self, say: act.Say) -> None:
        self._barge_in = say.barge_in
        self.lang = say.lang or self.lang
        self.transcript.add("bot", say.text)
        parts = say.parts or (say.text,)
        pause_ms = 0  # silence owed before the next sentence: a <break>, else the sentence gap
        spoke = False
        for part in parts:
            if self._hung_up:
                return
            if isinstance(part, int):
                pause_ms += part  # an author's break is the whole pause (the voice's own edge silence is trimmed)
                continue
            if not part.strip():
                continue
            # Sentence by sentence: the first plays while the next is synthesized.
            for sentence in split_sentences(part) or [part]:
                if say.barge_in == "speech" and (self._caller_talking() or self._caller_went_on()):
                    log.info("barge-in before the prompt was ready", extra={"fields": {"call_id": self.channel.call_id}})
                    return  # the caller talks (from the answer on, or on after their last turn): listen now
                try:
                    pcm = await self.speech.synthesize(sentence, say.lang, self.play_rate)
                except EngineCrashed as exc:
                    self.engine_failures += 1
                    log.error("TTS failed: %s", exc, extra={"fields": {"call_id": self.channel.call_id}})
                    continue
                if self._hung_up or (self._pending_keys and say.barge_in != "none"):
                    return  # the caller already keyed ahead (or left): don't start talking over them
                self._end_hold()
                pcm = trim_silence(pcm, self.play_rate)  # the caller waits for this audio: no lead-in, no dead air
                if spoke and pause_ms == 0:
                    pause_ms = SENTENCE_GAP_MS
                if pause_ms:
                    self._play_silence(pause_ms)
                    pause_ms = 0
                if self._turn_ended is not None and self.turns:
                    turn = self.turns[-1]
                    turn.tts_first_ms = (time.perf_counter() - self._turn_ended) * 1000
                    self._turn_ended = None
                    self.transcript.measure("turn", reply_ms=round(turn.endpoint_ms + turn.tts_first_ms),
                                            asr_ms=round(turn.asr_ms), nlu_ms=round(turn.nlu_ms))
                self.channel.play(pcm, self.play_rate)
                spoke = True
        if pause_ms and not self._hung_up:  # a closing break ("Take your time. <break/>") is kept
            self._play_silence(pause_ms)

    def _caller_talking(self) -> bool:
        """Has the caller been talking for TALKING_FRAMES frames in a row in the audio not yet listened to?

        The session synthesises a prompt before it opens the listen; a caller who talks at once (right after the
        answer, or on after their own answer) must cut the prompt then, not after it has all been synthesised."""
        if not self._audio_attached or self.bridged:
            return False
        frames = list(self._frames)
        start = max(0, min(self._scanned, len(frames)) - TALKING_FRAMES)
        self._scanned = len(frames)
        run = 0
        pcm = np.concatenate(frames[start:]) if frames[start:] else np.zeros(0, np.int16)
        for _, voiced in self._prompt_vad.frames(pcm.astype(np.int16, copy=False)):  # chunks come in any size
            # Only before the first turn (a caller who talks at once): re-armed by pauses inside continuous talk,
            # it cut every reply of a caller who kept talking (and replies over SIP, heard as nothing).
            run = run + 1 if voiced and self._quiet_seen else 0
            if run >= TALKING_FRAMES:
                return True
        return False

    def _caller_went_on(self) -> bool:
        """Did the caller talk on (TALKING_FRAMES voiced in a row) within the hangover left after an early turn?
        Then the reply to it is not started: the listen that follows joins the rest to that turn."""
        if self._resume is None or self._barge_in != "speech" or not self._audio_attached:
            return False
        if not self._frames:
            return False
        pcm = np.concatenate(list(self._frames))[:int(self._resume.window_ms * AUDIO_RATE / 1000)]
        run = 0
        for _, voiced in self._prompt_vad.frames(pcm.astype(np.int16, copy=False)):
            run = run + 1 if voiced else 0
            if run >= TALKING_FRAMES:
                return True
        return False

    def _play_silence(self, ms: int) -> None:
        self._end_hold()
        self.channel.play(np.zeros(self.play_rate * ms // 1000, dtype=np.int16), self.play_rate)

    def _end_hold(self) -> None:
        """A prompt is ready: it replaces the hold audio (waiting callers hear hold audio, not silence, while TTS works)."""
        if self._hold_playing:
            self.channel.stop_playback()
            self._hold_playing = False

    async def _wait_prompts(self) -> None:
        """Until the queued prompts have been played (or the caller hung up); keys typed meanwhile are kept."""
        playback = asyncio.ensure_future(self.channel.wait_playback())
        try:
            while not playback.done() and not self._hung_up:
                self._control.clear()
                control = asyncio.ensure_future(self._control.wait())
                await asyncio.wait({playback, control}, return_when=asyncio.FIRST_COMPLETED)
                control.cancel()
        finally:
            playback.cancel()

    # ------------------------------------------------------------------ input
    def _attach_audio(self, attached: bool) -> None:
        if attached != self._audio_attached and not self.bridged:
            self._audio_attached = attached
            self.channel.on_audio(self._on_audio if attached else None)
            self._frames.clear()

    async def _listen(self, listen: act.Listen) -> ev.Event | None:
        """Wait for speech, keys, silence or hang-up, with barge-in on the prompt still playing."""
        busy = getattr(self.speech, "busy", None)
        speculation = Speculation(lambda audio: self._transcribe(audio, listen),
                                  self._wake.set,
                                  busy if callable(busy) else (lambda: False))
        try:
            return await self._listen_turn(listen, speculation)
        finally:
            speculation.close()  # a speculative decode still running finishes in its worker unheeded
            self._quiet_seen, self._scanned = False, 0  # talk that goes on after this turn is no new onset

    def _transcribe(self, audio: np.ndarray, listen: act.Listen) -> Awaitable[Utterance]:
        """Recognise one utterance of this listen (against its grammar when it has one)."""
        if listen.grammar is None:
            return self.speech.transcribe(audio, self._asr_lang(listen), self._caller_language, listen.hints)
        return self.speech.transcribe(audio, self._asr_lang(listen), self._caller_language, listen.hints,
                                      grammar=listen.grammar)

    async def _listen_turn(self, listen: act.Listen, speculation: Speculation) -> ev.Event | None:
        self._attach_audio(listen.mode in ("speech", "both"))
        want_speech = listen.mode in ("speech", "both")
        want_keys = listen.mode in ("dtmf", "both")
        early = listen.early if want_speech else None
        hangover_ms = min(SPECULATION_START_MS, max(0, listen.end_silence_ms),
                          early.silence_ms if early else SPECULATION_START_MS)
        end_silence_ms = max(200, listen.end_silence_ms)
        if listen.grammar is not None and listen.grammar.kind == "digits":  # people pause between digit groups
            end_silence_ms = max(end_silence_ms, DIGITS_END_SILENCE_MS)
        settings = ListenSettings(no_input_timeout_ms=3_600_000, end_silence_ms=end_silence_ms,
                                  max_utterance_ms=15000, hangover_start_ms=hangover_ms)
        detector = SpeechDetector(settings, self._vad)
        resume, self._resume = self._resume, None
        if not want_speech or self._barge_in != "speech":
            resume = None  # the audio since the early turn is not kept: its time cannot be told
        self._keep_preroll()
        rejoining = False  # the caller went on within the early turn's hangover: this speech completes that turn
        paused: dict[int, np.ndarray] = {}  # the audio of each pause (revision), for an early commit
        digits = ""
        judged: dict[int, tuple[Utterance, NluResult | None]] = {}  # speculative results found incomplete
        no_input_deadline: float | None = None
        digit_deadline: float | None = None
        timeout_s = max(0.5, listen.timeout_ms / 1000.0)
        loop = asyncio.get_running_loop()
        prompt_playing = self.channel.playing
        barge_ok_speech = self._barge_in == "speech"
        barge_ok_keys = self._barge_in in ("speech", "dtmf")
        if not prompt_playing:
            no_input_deadline = loop.time() + timeout_s

        def finish_keys(keys: str) -> ev.Event:
            self.transcript.add("caller", "*" * len(keys) if self.sensitive else mask_keyed(keys), kind="dtmf")
            return ev.Keys(keys)

        while True:
            if self._hung_up:
                return None
            # 1. keys typed so far (including keyed ahead during the prompt)
            while self._pending_keys:
                key = self._pending_keys.popleft()
                if not want_keys:
                    continue
                if self.channel.playing:
                    if not barge_ok_keys:
                        continue
                    self.channel.stop_playback()
                if listen.max_digits is None:
                    return finish_keys(key)  # menu choice: one key is the answer
                if listen.terminator and key == listen.terminator:
                    return finish_keys(digits)
                digits += key
                if len(digits) >= listen.max_digits:
                    return finish_keys(digits)
                digit_deadline = loop.time() + INTER_DIGIT_TIMEOUT_S
            # 2. prompt finished: the no-input timer starts now
            if prompt_playing and not self.channel.playing:
                prompt_playing = False
                no_input_deadline = loop.time() + timeout_s
                if not barge_ok_speech:
                    detector = SpeechDetector(settings, self._vad)  # speech over a no-barge-in prompt is dropped
                    self._frames.clear()
            # 3. caller audio through VAD + endpointer
            while self._frames:
                frame = self._frames.popleft()
                if not want_speech or (self.channel.playing and not barge_ok_speech):
                    continue
                for point in detector.feed(frame):
                    if isinstance(point, SpeechStarted):
                        no_input_deadline = None
                        rejoining = resume is not None and point.at_ms <= resume.window_ms
                        if self.channel.playing:
                            self.channel.stop_playback()  # barge-in
                            log.info("barge-in", extra={"fields": {"call_id": self.channel.call_id}})
                    elif isinstance(point, HangoverStarted):
                        paused[point.revision] = point.audio
                        if not rejoining:  # a rejoined turn is recognised whole at its end
                            speculation.start(point.revision, point.audio)
                    elif isinstance(point, HangoverCancelled):
                        speculation.cancel(point.revision)
                        judged.pop(point.revision, None)
                    elif isinstance(point, (SpeechEnded, MaxUtterance)) and rejoining:
                        assert resume is not None
                        return await self._rejoined(resume, point.audio)
                    elif isinstance(point, (SpeechEnded, MaxUtterance)):
                        revision = point.revision if isinstance(point, SpeechEnded) else None
                        return await self._understand(point.audio, listen, speculation, revision, judged)
            # 3b. semantic endpointing: a complete answer after a short silence ends the turn now (not the rest of
            # an early turn: that is no answer to this listen)
            if early is not None and not rejoining:
                committed = await self._early_commit(detector, early, speculation, listen, judged, paused)
                if committed is not None:
                    return committed
            # 4. timers
            now = loop.time()
            if digits and digit_deadline is not None and now >= digit_deadline:
                return finish_keys(digits)
            if not digits and no_input_deadline is not None and now >= no_input_deadline and not detector_busy(detector):
                self.transcript.add("caller", "", kind="noinput")
                return ev.NoInput()
            await self._wait_input(0.02 if self._frames else 0.05)

    def _keep_preroll(self) -> None:
        """What the caller said since their last turn (or the answer) opens this listen, when the prompt allowed
        speech barge-in: a caller who talks at once, or goes on right after the bot's reply began, is heard from
        their first word. Otherwise, and beyond PREROLL_FRAMES, earlier audio is dropped."""
        if self._barge_in != "speech":
            self._frames.clear()
        while len(self._frames) > PREROLL_FRAMES:
            self._frames.popleft()
        self._scanned = 0

    async def _wait_input(self, timeout: float) -> None:
        """Sleep until audio, a key, a hang-up or ``timeout`` (waiting on an Event consumes nothing)."""
        self._wake.clear()
        if self._frames or self._pending_keys or self._hung_up:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def _understand(self, audio: np.ndarray, listen: act.Listen, speculation: Speculation,
                          revision: int | None, judged: dict[int, tuple[Utterance, NluResult | None]]) -> ev.Event:
        """The utterance ended after end_silence_ms (or at its maximum length): recognise and understand it."""
        timing = TurnTiming(endpoint_ms=float(max(200, listen.end_silence_ms)) if revision is not None else 0.0)
        started = time.perf_counter()
        try:
            utterance, timing.speculative_hit = await speculation.final(revision, audio)
        except EngineCrashed as exc:
            return self._asr_failed(exc)
        timing.asr_ms = (time.perf_counter() - started) * 1000
        timing.asr_decodes = speculation.decodes
        parsed = judged.get(revision)[1] if revision in judged else None  # type: ignore[index]
        return await self._interpret(utterance, listen, timing, parsed)

    async def _early_commit(self, detector: SpeechDetector, early: EarlyEndpoint, speculation: Speculation,
                            listen: act.Listen, judged: dict[int, tuple[Utterance, NluResult | None]],
                            paused: dict[int, np.ndarray]) -> ev.Event | None:
        """After early.silence_ms of silence, end the turn if the speculative recognition already answers."""
        endpointer = detector.endpointer
        revision = endpointer.revision
        if not detector_busy(detector) or endpointer.silence_ms < early.silence_ms or revision in judged:
            return None
        speculation.kick(revision)  # deferred while the engines were saturated: this pause is worth a decode
        utterance = speculation.result(revision)
        if utterance is None:
            return None  # still decoding: checked again at the next frame or when the result arrives
        timing = TurnTiming(endpoint_ms=endpointer.silence_ms, speculative_hit=True, early=True,
                            asr_decodes=speculation.decodes)
        parsed = await self._parse(utterance, listen, timing) if utterance.text and \
            utterance.confidence >= MIN_ASR_CONFIDENCE else None
        verdict = decide(early, text=utterance.text, asr_confidence=utterance.confidence,
                         intent=parsed.intent if parsed else None,
                         intent_confidence=parsed.confidence if parsed else 0.0,
                         entities={e.type: e.value for e in parsed.entities} if parsed else None)
        if not verdict.complete:
            judged[revision] = (utterance, parsed)
            return None
        log.debug("early endpoint: %s", verdict.reason, extra={"fields": {"call_id": self.channel.call_id}})
        if revision in paused:  # speech resuming within the rest of the hangover will still join this turn
            window_ms = endpointer.settings.end_silence_ms - endpointer.silence_ms
            self._committed_early = (paused[revision], listen, window_ms)
        return await self._interpret(utterance, listen, timing, parsed)

    def _asr_failed(self, exc: EngineCrashed) -> ev.Event:
        """The recogniser crashed on this turn: recorded, and a nomatch (the dialplan offers keys instead)."""
        self.engine_failures += 1
        log.error("ASR failed: %s; asking for keys instead", exc, extra={"fields": {"call_id": self.channel.call_id}})
        self.transcript.add("caller", "", kind="asr_failed")
        return ev.NoMatch()

    async def _rejoined(self, resume: EarlyTurn, audio: np.ndarray) -> ev.Event:
        """The caller went on within an early turn's hangover: recognise that turn's words with the rest, as the
        answer to the turn's own listen (the session handles it from the state before the turn)."""
        log.info("speech resumed within the hangover: rejoined to the early turn",
                 extra={"fields": {"call_id": self.channel.call_id}})
        self.transcript.add("event", "rejoined", window_ms=round(resume.window_ms))
        timing = TurnTiming(endpoint_ms=float(max(200, resume.listen.end_silence_ms)), rejoined=True)
        started = time.perf_counter()
        try:
            utterance = await self._transcribe(np.concatenate([resume.audio, audio]), resume.listen)
        except EngineCrashed as exc:  # the early turn's answer stands: the failure is the next listen's nomatch
            return self._asr_failed(exc)
        self._rejoin = resume.state
        timing.asr_ms = (time.perf_counter() - started) * 1000
        timing.asr_decodes = 1
        return await self._interpret(utterance, resume.listen, timing, None)

    async def _parse(self, utterance: Utterance, listen: act.Listen, timing: TurnTiming) -> NluResult | None:
        if self.nlu is None:
            return None
        t0 = time.perf_counter()
        try:
            return await parse_off_loop(self.nlu, utterance.text, utterance.language or listen.lang)
        except NluError as exc:
            log.warning("NLU failed: %s", exc)
            return None
        finally:
            timing.nlu_ms = (time.perf_counter() - t0) * 1000

    async def _interpret(self, utterance: Utterance, listen: act.Listen, timing: TurnTiming,
                   parsed: NluResult | None) -> ev.Event:
        """The recognised words as a dialplan event (NLU reused when the speculative result was parsed already)."""
        text = utterance.text
        if not text or utterance.confidence < MIN_ASR_CONFIDENCE:
            self.transcript.add("caller", "", kind="nomatch", asr_confidence=round(utterance.confidence, 2))
            self.turns.append(timing)
            self._turn_ended = time.perf_counter()
            heard_lang = utterance.language if self.detect_language and text else None
            if heard_lang:
                self._caller_language = heard_lang
            return ev.NoMatch(lang=heard_lang)
        if parsed is None:
            parsed = await self._parse(utterance, listen, timing)
        intent, entities, confidence = None, {}, utterance.confidence
        if parsed is not None:
            intent, confidence = parsed.intent, parsed.confidence
            entities = {e.type: e.value for e in parsed.entities}
        grammar_value = getattr(utterance, "grammar_value", None)
        if grammar_value is not None:
            entities[GRAMMAR_ENTITY] = grammar_value
        self.turns.append(timing)
        self._turn_ended = time.perf_counter()
        self.transcript.add("caller", "[sensitive]" if self.sensitive else text, intent=intent,
                            lang=utterance.language, grammar=grammar_value is not None,
                            asr_confidence=round(utterance.confidence, 2))
        if self.detect_language and utterance.language:
            self._caller_language = utterance.language
        return ev.Heard(text=text, intent=intent, entities=entities, confidence=confidence,
                        lang=utterance.language or None)

    def _asr_lang(self, listen: act.Listen) -> str | None:
        return None if self.detect_language else listen.lang

    # ------------------------------------------------------------------ human queues
    async def _enqueue(self, action: act.Enqueue) -> ev.Event | None:
        await self._wait_prompts()
        if self.queues is None:
            self.transcript.add("system", f"enqueue {action.queue}: no queues configured")
            return ev.TransferFailed("no agent queues are configured on this server")
        try:
            self.membership = await self.queues.join(action, self.transcript.entries, self.lang)
        except Exception as exc:  # noqa: BLE001 - QueueJoinError and store failures alike go to on_failure
            self.transcript.add("system", f"enqueue {action.queue} failed: {exc}")
            return ev.TransferFailed(str(exc))
        self.transcript.add("system", f"queued in {action.queue}", event="queue_joined", queue=action.queue)
        self._attach_audio(False)  # nobody listens to a waiting caller: keys arrive as DTMF events
        return await self._queue_wait()

    async def _queue_wait(self) -> ev.Event | None:
        """Hold audio until the ACD reports something (position/EWT, agent answered) or the caller acts."""
        membership = self.membership
        assert membership is not None
        event: ev.Event | None = None
        while True:
            if self._hung_up:
                return None
            if event is None and not membership.events.empty():
                event = membership.events.get_nowait()
            if event is not None:
                if isinstance(event, ev.AgentAnswered):
                    self._end_hold()
                    self.channel.stop_playback()
                    self.bridged = True
                    self.outcome = "agent"
                    self.transcript.add("system", f"connected to agent {event.agent}", event="agent_answered",
                                        agent=event.agent)
                # Otherwise (announcements) the hold audio plays on until the announcement's audio is ready.
                return event
            if self._pending_keys:
                self.channel.stop_playback()
                self._hold_playing = False
                key = self._pending_keys.popleft()
                self.transcript.add("caller", key, kind="dtmf")
                return ev.Keys(key)
            if not self.channel.playing and self.hold_audio is not None and not membership.bridged.is_set():
                self.channel.play(self.hold_audio, 8000)
                self._hold_playing = True
            self._frames.clear()  # hold audio is never fed to the recogniser; caller speech is not listened to
            event = await self._next_queue_signal(membership)

    async def _next_queue_signal(self, membership: QueueMembership) -> ev.Event | None:
        """An ACD event, or None when woken by a key, a hang-up or the end of the hold audio.

        No polling: hundreds of waiting callers cost nothing between events (a long timeout is only a safety net).
        """
        self._wake.clear()
        if self._pending_keys or self._hung_up or not membership.events.empty():
            return None
        getter = asyncio.ensure_future(membership.events.get())
        others = [asyncio.ensure_future(self._wake.wait())]
        if self.channel.playing:
            others.append(asyncio.ensure_future(self.channel.wait_playback()))
        try:
            await asyncio.wait([getter, *others], timeout=QUEUE_SAFETY_WAKE_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in others:
                waiter.cancel()
            if not getter.done():
                getter.cancel()  # asyncio.Queue.get leaves the item in the queue when cancelled
        return getter.result() if getter.done() and not getter.cancelled() else None

    async def _stay_bridged(self) -> None:
        """The agent has the caller: wait for either side to hang up."""
        while not self._hung_up:
            await self._wait_input(1.0)
        return None

    # ------------------------------------------------------------------ the outside world
    async def _webhook(self, action: act.Webhook) -> ev.Event:
        if self.webhooks is None:
            return ev.WebhookResult(False, None, "no webhook client configured")
        return await self.webhooks(action)

    async def _answer(self, action: act.Answer) -> ev.Event:
        """Knowledge retrieval (the runner keeps it off the event loop); none configured: no article."""
        if self.knowledge is None:
            return ev.KnowledgeResult((), action.query)
        return await self.knowledge(action)

    async def _transfer(self, action: act.Transfer) -> ev.Event | None:
        await self._wait_prompts()
        if not self.transfer_allowed(action.target):
            log.warning("transfer refused: target not allowed",
                        extra={"fields": {"call_id": self.channel.call_id, "target": action.target}})
            return ev.TransferFailed(f"target {action.target} is not in transfer.allowed_targets")
        if await self.channel.transfer(action.target):
            self.outcome = "transferred"
            self.transcript.add("system", f"transferred to {action.target}", event="transferred")
            await self.channel.hangup()
            return None
        return ev.TransferFailed("the transfer was refused")


def detector_busy(detector: SpeechDetector) -> bool:
    """True while the caller is mid-utterance (no-input must not fire then)."""
    phase = getattr(detector.endpointer, "phase", None)
    return phase is not None and getattr(phase, "name", "") in ("SPEECH", "HANGOVER")
