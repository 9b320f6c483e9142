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


class LiveLeg(Channel, Protocol):
    """A Channel that can be bridged to another leg (caller or agent, any transport): its live audio is relayed
    frame by frame at the leg's own rate, and the bridge waits for either leg to end."""

    @property
    def live_rate(self) -> int:
        """Sample rate of the frames given to ``on_live_audio`` and taken by ``play_live`` (8000 SIP, 16000 WebRTC)."""

    @property
    def wire_codec(self) -> str | None:
        """The leg's G.711 codec if it has one: an agent leg dialled with the same codec needs no transcoding."""

    @property
    def ended(self) -> asyncio.Event:
        """Set once the leg has ended, from either side."""

    def on_live_audio(self, callback: Callable[[np.ndarray], None] | None) -> None:
        """The far end's audio as received: int16 frames of 20 ms at ``live_rate`` (alongside ``on_audio``)."""

    def play_live(self, pcm: np.ndarray, max_backlog_frames: int) -> None:
        """Send relayed int16 audio at ``live_rate``; beyond ``max_backlog_frames`` queued, the oldest is dropped."""

    async def end(self, reason: str) -> None:
        """Hang up (BYE, CANCEL or a data-channel hang-up) with ``reason`` for the far end and the logs."""

    async def close(self) -> None:
        """Release the leg's media (idempotent); the signalling is ended by ``end``."""
