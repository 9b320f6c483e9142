"""TextChannel: a scripted text conversation through the real call session (simulation, dialplan debugging).

The caller is a script of lines: ``"check my balance"`` is said, ``"#123"`` keys digits, ``"..."`` stays silent
(the bot's no-input timer runs). The bot's side is text too: the paired :class:`TextSpeech` (pass
``channel.speech`` to the session) records every prompt instead of synthesising it, and "recognises" each caller
line exactly. So that the session's VAD, endpointer and barge-in logic run unchanged, a said line reaches the
session as a short burst of synthetic voiced audio followed by silence; audio play/stop are no-ops.

The caller answers when the bot has said something new and then stayed quiet for ``think_s``; after the last line
has been answered, the caller hangs up (or when the bot has done nothing for ``idle_timeout_s``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from voicebot.channels.base import ChannelEvent, Dtmf, EventInbox, HungUp
from voicebot.speech.services import Utterance

RATE = 16000
FRAME = 320
KEYS = re.compile(r"^#([0-9*#A-D]+)$")
SILENT = "..."
VOICED_S = 0.6
AFTER_SPEECH_S = 1.5  # trailing silence: longer than any end_silence_ms, so the endpointer closes the utterance
FRAMES_PER_TICK = 5  # audio runs 5x faster than real time (the endpointer counts frames, not wall time)


def voiced_audio(seconds: float) -> np.ndarray:
    """A gliding harmonic buzz with a syllable-rate envelope: what a frame VAD takes for speech."""
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 120 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    signal = sum(np.sin(h * phase) / h for h in range(1, 25)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    audio: np.ndarray = (signal / np.abs(signal).max() * 8000).astype(np.int16)
    return audio


def parse_line(line: str) -> tuple[str, str]:
    """("say", text) | ("keys", digits) | ("silent", "") for one script line."""
    text = line.strip()
    if text in ("", SILENT):
        return "silent", ""
    keys = KEYS.match(text.replace(" ", ""))
    if text.startswith("#"):
        if keys is None:
            raise ValueError(f"bad key line {line!r}: write '#' then keypad digits 0-9 * # A-D, e.g. '#1234#'")
        return "keys", keys.group(1)
    return "say", text


@dataclass(frozen=True)
class TextTurn:
    who: str  # "bot" | "caller"
    text: str
    kind: str = "say"  # say | keys | silent


class TextSpeech:
    """The session's Speech for a TextChannel: prompts are recorded as text, caller lines recognised verbatim."""

    multilingual = True

    def __init__(self, channel: TextChannel) -> None:
        self.channel = channel

    async def synthesize(self, text: str, lang: str | None, rate: int) -> np.ndarray:
        self.channel._bot_said(text)
        return np.zeros(rate // 50, dtype=np.int16)  # 20 ms of silence: play() ignores it anyway

    async def transcribe(self, pcm16k: np.ndarray, lang: str | None, likely: str | None = None,
                         hints: Sequence[str] = (), grammar: object = None) -> Utterance:
        text = self.channel._spoken.popleft() if self.channel._spoken else ""
        return Utterance(text, 1.0 if text else 0.0, (lang or "en").split("-")[0], 0.0)


class TextChannel:
    """The Channel protocol for a text script; ``turns`` is the conversation as it happened."""

    def __init__(self, script: Sequence[str], *, think_s: float = 0.2, idle_timeout_s: float = 20.0,
                 call_id: str = "text-call") -> None:
        self.script = deque(parse_line(line) for line in script)
        self.think_s = think_s
        self.idle_timeout_s = idle_timeout_s
        self.speech = TextSpeech(self)
        self.turns: list[TextTurn] = []
        self.ended: str | None = None
        self._call_id = call_id
        self._spoken: deque[str] = deque()
        self._audio: deque[np.ndarray] = deque()
        self._inbox = EventInbox()
        self._audio_cb: Callable[[np.ndarray], None] | None = None
        self._clock: asyncio.Task[None] | None = None
        self._bot_count = 0
        self._last_bot = time.monotonic()

    @property
    def call_id(self) -> str:
        return self._call_id

    @property
    def said(self) -> list[str]:
        """Every prompt the bot said, in order."""
        return [t.text for t in self.turns if t.who == "bot"]

    def _bot_said(self, text: str) -> None:
        self.turns.append(TextTurn("bot", text))
        self._bot_count += 1
        self._last_bot = time.monotonic()

    # ------------------------------------------------------------------ the scripted caller
    async def _run(self) -> None:
        answered_at = -1  # the bot's prompt count when the caller last acted
        while self.ended is None:
            await asyncio.sleep(0.02)
            for _ in range(FRAMES_PER_TICK):
                frame = self._audio.popleft() if self._audio else np.zeros(FRAME, np.int16)
                if self._audio_cb is not None:
                    self._audio_cb(frame)
            quiet = time.monotonic() - self._last_bot
            if quiet > self.idle_timeout_s:
                self._caller_hangup()
            elif self._bot_count > answered_at and quiet >= self.think_s and not self._audio:
                answered_at = self._bot_count
                if not self.script:
                    self._caller_hangup()
                else:
                    self._act(*self.script.popleft())

    def _act(self, kind: str, value: str) -> None:
        self.turns.append(TextTurn("caller", value, kind))
        if kind == "keys":
            for digit in value:
                self._inbox.put(Dtmf(digit, "text"))
        elif kind == "say":
            self._spoken.append(value)
            audio = np.concatenate([voiced_audio(VOICED_S), np.zeros(int(AFTER_SPEECH_S * RATE), np.int16)])
            self._audio.extend(audio[i:i + FRAME] for i in range(0, len(audio), FRAME))

    def _caller_hangup(self) -> None:
        if self.ended is None:
            self.ended = "caller hangup"
            self._inbox.put(HungUp("caller hung up"))

    # ------------------------------------------------------------------ Channel protocol
    def play(self, pcm: np.ndarray, rate: int) -> None:
        """No-op: the prompt's text was recorded when it was 'synthesised'."""

    def stop_playback(self) -> None:
        """No-op: nothing is ever playing."""

    @property
    def playing(self) -> bool:
        return False

    async def wait_playback(self) -> None:
        return None

    async def next_event(self, timeout: float | None) -> ChannelEvent | None:
        return await self._inbox.next(timeout)

    def on_audio(self, callback: Callable[[np.ndarray], None] | None) -> None:
        self._audio_cb = callback
        if callback is not None and self._clock is None:
            self._last_bot = time.monotonic()
            self._clock = asyncio.get_running_loop().create_task(self._run())

    async def hangup(self) -> None:
        if self.ended is None:
            self.ended = "bot hangup"
            self._inbox.put(HungUp("bot hangup"))
        if self._clock is not None:
            await asyncio.shield(self._clock)

    async def transfer(self, target: str) -> bool:
        self.turns.append(TextTurn("bot", f"[transfer to {target}]", "transfer"))
        return False
