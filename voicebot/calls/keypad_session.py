"""CallSession: drives one call over any Channel.

The built-in flow here is the SIP foundation's demo: greet, collect keypad digits, read them back, say goodbye.
The dialplan interpreter plugs in behind the same Channel interface (events in, actions out).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from voicebot.channels.base import Channel, Dtmf, HungUp
from voicebot.nlu.numbers import EN_DIGIT_NAMES

log = logging.getLogger("voicebot.calls.keypad_session")

DIGIT_WORDS = {**{str(digit): name for digit, name in enumerate(EN_DIGIT_NAMES)}, "*": "star", "#": "hash",
               "A": "A", "B": "B", "C": "C", "D": "D"}


class PromptSource(Protocol):
    def render(self, text: str, voice: str = "en", rate: int = 8000) -> np.ndarray: ...


@dataclass
class DemoPrompts:
    greeting: str
    goodbye: str
    digit_timeout_s: float = 5.0
    max_digits: int = 16
    voice: str = "en"


@dataclass
class CallRecord:
    """What happened on the call, logged when it ends."""

    call_id: str
    from_: str
    to: str
    started_at: float = field(default_factory=time.time)
    digits: str = ""
    outcome: str = ""
    dialplan: str = ""
    events: list[str] = field(default_factory=list)
    transcript: list[dict] = field(default_factory=list)
    turns: list[dict] = field(default_factory=list)
    recording: dict | None = None


class DemoDtmfSession:
    """Greeting → digits until '#', max digits or timeout → read-back → goodbye → hang up."""

    def __init__(self, channel: Channel, prompts: DemoPrompts, renderer: PromptSource, record: CallRecord,
                 rate: int = 8000) -> None:
        self.channel = channel
        self.prompts = prompts
        self.renderer = renderer
        self.record = record
        self.rate = rate

    def _say(self, text: str) -> None:
        self.channel.play(self.renderer.render(text, self.prompts.voice, self.rate), self.rate)

    def _say_digits(self, digits: str) -> None:
        for d in digits:
            self._say(DIGIT_WORDS.get(d, d))

    async def run(self) -> CallRecord:
        self._say(self.prompts.greeting)
        digits = ""
        while True:
            # The digit timer starts when the greeting ends (or at once if the caller barged in with a key).
            timeout = None if self.channel.playing and not digits else self.prompts.digit_timeout_s
            if timeout is None:
                waiter = await self._event_or_playback_end()
                if waiter is None:
                    continue
                event = waiter
            else:
                event = await self.channel.next_event(timeout)
            if event is None:
                self.record.events.append("digit timeout")
                break
            if isinstance(event, HungUp):
                self.record.outcome = "caller hung up"
                self.record.digits = digits
                return self.record
            if isinstance(event, Dtmf):
                if self.channel.playing and not digits:
                    self.channel.stop_playback()  # DTMF barge-in on the greeting
                if event.digit == "#":
                    break
                digits += event.digit
                if len(digits) >= self.prompts.max_digits:
                    break
        self.record.digits = digits
        if digits:
            self._say("You entered")
            self._say_digits(digits)
        else:
            self._say("We did not receive any digits.")
        self._say(self.prompts.goodbye)
        await self._wait_playback_or_hangup()
        if self.record.outcome != "caller hung up":
            self.record.outcome = "completed"
            await self.channel.hangup()
        return self.record

    async def _event_or_playback_end(self) -> Dtmf | HungUp | None:
        """Wait for an event while a prompt plays; None when the prompt finished first."""
        event_task = asyncio.ensure_future(self.channel.next_event(None))
        play_task = asyncio.ensure_future(self.channel.wait_playback())
        done, _ = await asyncio.wait({event_task, play_task}, return_when=asyncio.FIRST_COMPLETED)
        if event_task in done:
            play_task.cancel()
            return event_task.result()
        event_task.cancel()
        return None

    async def _wait_playback_or_hangup(self) -> None:
        while self.channel.playing:
            event = await self._event_or_playback_end()
            if event is None:
                return
            if isinstance(event, HungUp):
                self.record.outcome = "caller hung up"
                return
