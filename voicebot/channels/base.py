"""The Channel protocol: what a call session needs from any transport (SIP, WebRTC, WAV files, text)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np


@dataclass(frozen=True)
class Dtmf:
    """A keypad digit; ``source`` says how it arrived (rfc4733, info, datachannel, text)."""

    digit: str
    source: str


@dataclass(frozen=True)
class HungUp:
    """The far end ended the call."""

    reason: str


ChannelEvent = Dtmf | HungUp


class EventInbox:
    """Channel events for ``next_event``: an event leaves the inbox only with a call that returns it (a call
    cancelled at any moment takes nothing), and after a HungUp every call returns that HungUp again."""

    def __init__(self) -> None:
        self._events: deque[ChannelEvent] = deque()
        self._ready = asyncio.Event()

    def put(self, event: ChannelEvent) -> None:
        self._events.append(event)
        self._ready.set()

    async def next(self, timeout: float | None) -> ChannelEvent | None:
        if not self._events:
            self._ready.clear()
            try:
                # asyncio.timeout, not wait_for: wait_for (3.11) may swallow a cancel once the wait is done.
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                return None
        if not self._events:
            return None
        event = self._events[0]
        if not isinstance(event, HungUp):
            self._events.popleft()
        return event


class Channel(Protocol):
    """Audio in and out, keypad, hang-up and transfer for one call."""

    @property
    def call_id(self) -> str: ...

    def play(self, pcm: np.ndarray, rate: int) -> None:
        """Queue int16 mono audio at ``rate`` Hz after what is already queued."""

    def stop_playback(self) -> None:
        """Drop queued audio at once (barge-in)."""

    @property
    def playing(self) -> bool: ...

    async def wait_playback(self) -> None:
        """Return when the queued audio has been sent (or was stopped)."""

    async def next_event(self, timeout: float | None) -> ChannelEvent | None:
        """The next DTMF / hang-up event, or None after ``timeout`` seconds."""

    def on_audio(self, callback: Callable[[np.ndarray], None] | None) -> None:
        """Receive caller audio as 16 kHz int16 frames of 20 ms."""

    async def hangup(self) -> None: ...

    async def transfer(self, target: str) -> bool:
        """Blind-transfer the caller to ``target`` (already checked against the allow-list)."""
