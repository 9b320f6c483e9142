"""ChannelBridge: live audio both ways between any two legs (SIP ↔ SIP, SIP ↔ WebRTC, WebRTC ↔ WebRTC).

Each direction resamples statefully when the legs' rates differ (8 kHz G.711, 16 kHz WebRTC) and is bounded at
``max_backlog`` frames (latency beats completeness). A SIP caller's recording keeps running: the agent's audio is
what the caller's stream sends, so the recorder's tick sees it on the agent channel.

``tap`` (optional, set after construction) sees each relayed frame as received: ``tap("a" | "b", pcm, rate)``;
the live transcript of a bridged call listens there (voicebot.handoff.live_transcript). It must be cheap.
"""

from __future__ import annotations

import asyncio
from typing import Callable

import numpy as np

from voicebot.channels.base import LiveLeg
from voicebot.speech.resample import StreamResampler

AudioTap = Callable[[str, np.ndarray, int], None]  # (side "a" or "b", int16 frame, its rate)
MAX_RELAY_BACKLOG = 10  # frames; beyond this the relay drops the oldest audio (keeps latency bounded)


class ChannelBridge:
    """Relays ``a``'s audio to ``b`` and ``b``'s to ``a`` until :meth:`close`; counts the frames relayed."""

    def __init__(self, a: LiveLeg, b: LiveLeg, max_backlog: int = MAX_RELAY_BACKLOG) -> None:
        self.a, self.b = a, b
        self.max_backlog = max_backlog
        self.frames_a_to_b = 0
        self.frames_b_to_a = 0
        self.tap: AudioTap | None = None
        a.stop_playback()  # hold audio or a prompt still queued for the caller
        b.stop_playback()
        a.on_live_audio(self._relay(b, a.live_rate, "frames_a_to_b", "a"))
        b.on_live_audio(self._relay(a, b.live_rate, "frames_b_to_a", "b"))

    def _relay(self, target: LiveLeg, rate: int, counter: str, side: str) -> Callable[[np.ndarray], None]:
        resampler = StreamResampler(rate, target.live_rate) if rate != target.live_rate else None

        def relay(frame: np.ndarray) -> None:
            pcm = np.asarray(frame, dtype=np.int16)
            if self.tap is not None:
                self.tap(side, pcm, rate)
            if resampler is not None:
                pcm = resampler.process(pcm)
            if pcm.size:
                target.play_live(pcm, self.max_backlog)
            setattr(self, counter, getattr(self, counter) + 1)
        return relay

    async def wait_ended(self) -> LiveLeg:
        """Wait until either leg ends; returns the one that ended (``a`` when both did)."""
        waits = {asyncio.ensure_future(self.a.ended.wait()), asyncio.ensure_future(self.b.ended.wait())}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        return self.a if self.a.ended.is_set() else self.b

    def close(self) -> None:
        self.a.on_live_audio(None)
        self.b.on_live_audio(None)
