"""SipChannel: the Channel protocol over a SIP call leg and its RTP stream (8 kHz G.711 on the wire)."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

import numpy as np

from voicebot.channels.base import ChannelEvent, Dtmf, EventInbox, HungUp
from voicebot.rtp.payloads import SharedAudio
from voicebot.rtp.stream import RtpStream
from voicebot.sip.call import SipCall
from voicebot.speech.resample import StreamResampler, resample

log = logging.getLogger("voicebot.channels.sip")

WIRE_RATE = 8000
APP_RATE = 16000
INBAND_INFO_OVERLAP_S = 1.0  # an INFO digit this soon after the same in-band digit is that key press again
_wire_audio = SharedAudio(size=lambda pcm: pcm.nbytes)  # prompts at the wire rate, resampled once for every call


def _to_wire(pcm: np.ndarray, rate: int) -> np.ndarray:
    """`pcm` at the wire rate; read-only when `pcm` is, so its G.711 payload is shared too (voicebot.rtp.payloads)."""
    wire = resample(pcm, rate, WIRE_RATE)
    wire.flags.writeable = pcm.flags.writeable  # one-off audio stays out of the payload cache
    return wire


class SipChannel:
    """Bridges a :class:`SipCall` (signalling) and an :class:`RtpStream` (media) to a call session."""

    def __init__(self, call: SipCall, stream: RtpStream) -> None:
        self.call = call
        self.stream = stream
        self._events = EventInbox()  # cancellation-safe: a cancelled wait never loses a key or a hang-up
        self._playback_done = asyncio.Event()
        self._playback_done.set()
        self._audio_cb: Callable[[np.ndarray], None] | None = None
        self._wire_cb: Callable[[np.ndarray], None] | None = None
        self._live_cb: Callable[[np.ndarray], None] | None = None
        self._upsampler: StreamResampler | None = None
        self.digits_received: list[Dtmf] = []
        self._last_inband: tuple[str, float] | None = None  # digit, loop time: an INFO repeating it is dropped
        stream.on_dtmf(lambda digit: self._dtmf(digit, "inband" if stream.inband_dtmf else "rfc4733"))
        stream.on_playback_done(self._playback_done.set)
        call.events.dtmf.subscribe(self._dtmf)
        call.events.ended.subscribe(self._ended)

    @property
    def call_id(self) -> str:
        return self.call.call_id

    # ------------------------------------------------------------------ events
    def _dtmf(self, digit: str, source: str) -> None:
        now = asyncio.get_running_loop().time()
        if source == "inband":
            self._last_inband = (digit, now)
        elif source == "info" and self.stream.inband_dtmf:
            self.stream.detect_inband_dtmf(False)  # the peer keys by SIP INFO: its tones are not digits twice
            last = self._last_inband
            if last is not None and last[0] == digit and now - last[1] < INBAND_INFO_OVERLAP_S:
                return  # the same key press, already heard in the audio
        event = Dtmf(digit, source)
        self.digits_received.append(event)
        self._events.put(event)

    def _ended(self, call: SipCall) -> None:
        self._playback_done.set()
        self._events.put(HungUp(call.end_reason))

    async def next_event(self, timeout: float | None) -> ChannelEvent | None:
        return await self._events.next(timeout)

    # ------------------------------------------------------------------ audio
    def play(self, pcm: np.ndarray, rate: int) -> None:
        if rate != WIRE_RATE:
            pcm = _wire_audio.get(pcm, rate, lambda audio: _to_wire(audio, rate))
        if len(pcm) == 0:
            return
        self._playback_done.clear()
        self.stream.play(pcm)

    def stop_playback(self) -> None:
        self.stream.stop_playback()
        self._playback_done.set()

    @property
    def playing(self) -> bool:
        return self.stream.playing

    async def wait_playback(self) -> None:
        await self._playback_done.wait()

    def on_audio(self, callback: Callable[[np.ndarray], None] | None) -> None:
        """Caller audio for the session: 16 kHz int16 frames (stateful resampling from the 8 kHz wire)."""
        self._audio_cb = callback
        self._upsampler = StreamResampler(WIRE_RATE, APP_RATE) if callback is not None else None
        self._update_stream_callback()

    def on_wire_audio(self, callback: Callable[[np.ndarray], None] | None) -> None:
        """Caller audio as received: 8 kHz int16 frames (recording)."""
        self._wire_cb = callback
        self._update_stream_callback()

    def _update_stream_callback(self) -> None:
        if self._audio_cb is None and self._wire_cb is None and self._live_cb is None:
            self.stream.on_audio(None)
        else:
            self.stream.on_audio(self._on_frame)

    def _on_frame(self, frame: np.ndarray) -> None:
        if self._wire_cb is not None:
            self._wire_cb(frame)
        if self._live_cb is not None:
            self._live_cb(frame)
        if self._audio_cb is not None and self._upsampler is not None:
            self._audio_cb(self._upsampler.process(frame))

    # ------------------------------------------------------------------ relaying (LiveLeg)
    @property
    def live_rate(self) -> int:
        return WIRE_RATE

    @property
    def wire_codec(self) -> str | None:
        return self.stream.codec.name

    @property
    def ended(self) -> asyncio.Event:
        return self.call.ended

    def on_live_audio(self, callback: Callable[[np.ndarray], None] | None) -> None:
        """The far end's audio for a bridge: 8 kHz int16 frames as received (no resampling)."""
        self._live_cb = callback
        self._update_stream_callback()

    def play_live(self, pcm: np.ndarray, max_backlog_frames: int) -> None:
        self.stream.play_live(pcm, max_backlog_frames)

    # ------------------------------------------------------------------ control
    async def hangup(self) -> None:
        await self.call.hangup("bot hangup")

    async def end(self, reason: str) -> None:
        await self.call.hangup(reason)

    async def close(self) -> None:
        await self.stream.close()

    async def transfer(self, target: str) -> bool:
        status = await self.call.refer(target)
        return 200 <= status < 300
