"""WebRtcChannel: the Channel protocol over a browser's WebRTC peer connection (aiortc).

Media: the browser's microphone arrives as Opus (decoded by aiortc to 48 kHz) and is handed to the session as
16 kHz int16 frames of 20 ms; the bot's audio leaves through :class:`BotAudioTrack`, a 16 kHz mono track paced at
20 ms (aiortc encodes it to Opus). aiortc has no telephone-event, so keypad digits, hang-up and live captions travel
as JSON over a data channel (see :mod:`voicebot.web.protocol`).
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections import deque
from typing import Callable, cast

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from voicebot.channels.base import EventInbox, ChannelEvent, Dtmf, HungUp
from voicebot.speech.resample import resample
from voicebot.web.protocol import (CaptionMessage, ControlMessage, DtmfMessage, HangupMessage, ProtocolError,
                                   encode_message, parse_message)

log = logging.getLogger("voicebot.channels.webrtc")

APP_RATE = 16000
FRAME_SAMPLES = APP_RATE // 50  # 20 ms
FRAME_SECONDS = FRAME_SAMPLES / APP_RATE
CAPTION_BACKLOG = 50  # captions kept while the data channel is not open yet


class PlaybackQueue:
    """Queued int16 audio cut into fixed-size frames (pure logic: no clock, no I/O)."""

    def __init__(self, frame_samples: int = FRAME_SAMPLES) -> None:
        self.frame_samples = frame_samples
        self._chunks: deque[np.ndarray] = deque()
        self._offset = 0  # samples of _chunks[0] already taken
        self.pending = 0

    def append(self, pcm: np.ndarray) -> None:
        if pcm.size:
            self._chunks.append(pcm)
            self.pending += pcm.size

    def clear(self) -> None:
        self._chunks.clear()
        self._offset = 0
        self.pending = 0

    def take_frame(self) -> np.ndarray | None:
        """The next frame (zero-padded at the end of the audio), or None when nothing is queued."""
        if not self.pending:
            return None
        frame = np.zeros(self.frame_samples, dtype=np.int16)
        filled = 0
        while filled < self.frame_samples and self._chunks:
            chunk = self._chunks[0]
            count = min(self.frame_samples - filled, chunk.size - self._offset)
            frame[filled : filled + count] = chunk[self._offset : self._offset + count]
            filled += count
            self._offset += count
            if self._offset == chunk.size:
                self._chunks.popleft()
                self._offset = 0
        self.pending -= filled
        return frame


class FrameChunker:
    """Re-cuts int16 audio of any chunk size into frames of exactly ``frame_samples`` (pure logic)."""

    def __init__(self, frame_samples: int = FRAME_SAMPLES) -> None:
        self.frame_samples = frame_samples
        self._rest = np.zeros(0, dtype=np.int16)

    def push(self, pcm: np.ndarray) -> list[np.ndarray]:
        data = np.concatenate([self._rest, pcm]) if self._rest.size else pcm
        whole = data.size - data.size % self.frame_samples
        self._rest = data[whole:].copy()
        return [data[i : i + self.frame_samples] for i in range(0, whole, self.frame_samples)]


class BotAudioTrack(MediaStreamTrack):
    """The bot's voice: 16 kHz mono frames every 20 ms, silence when nothing is queued."""

    kind = "audio"

    def __init__(self, on_drained: Callable[[], None], on_sent: Callable[[np.ndarray], None]) -> None:
        super().__init__()
        self.queue = PlaybackQueue()
        self._on_drained = on_drained
        self._on_sent = on_sent
        self._start: float | None = None
        self._timestamp = 0
        self._time_base = fractions.Fraction(1, APP_RATE)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._timestamp += FRAME_SAMPLES
            delay = self._start + self._timestamp / APP_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        samples = self.queue.take_frame()
        if samples is None:
            samples = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        elif not self.queue.pending:
            self._on_drained()
        self._on_sent(samples)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = APP_RATE
        frame.pts = self._timestamp
        frame.time_base = self._time_base
        return frame


class WebRtcChannel:
    """One browser call: audio both ways, keypad and hang-up over the data channel, live captions to the page."""

    def __init__(self, pc: RTCPeerConnection, call_id: str) -> None:
        self.pc = pc
        self._call_id = call_id
        self._events = EventInbox()  # cancellation-safe: a cancelled wait never loses a key or a hang-up
        self._playback_done = asyncio.Event()
        self._playback_done.set()
        self._audio_cb: Callable[[np.ndarray], None] | None = None
        self._sent_cb: Callable[[np.ndarray], None] | None = None
        self._live_cb: Callable[[np.ndarray], None] | None = None
        self._wire_cb: Callable[[np.ndarray], None] | None = None
        self._data_channel: RTCDataChannel | None = None
        self._backlog: deque[str] = deque(maxlen=CAPTION_BACKLOG)
        self._reader: asyncio.Task[None] | None = None
        self.ended = asyncio.Event()
        self.end_reason = ""
        self.digits_received: list[Dtmf] = []
        self.outbound = BotAudioTrack(on_drained=self._playback_done.set, on_sent=self._sent)
        pc.addTrack(self.outbound)
        pc.on("track", self._on_track)
        pc.on("datachannel", self.attach_data_channel)
        pc.on("connectionstatechange", self._on_connection_state)

    @property
    def call_id(self) -> str:
        return self._call_id

    # ------------------------------------------------------------------ caller audio
    def on_audio(self, callback: Callable[[np.ndarray], None] | None) -> None:
        """Receive caller audio as 16 kHz int16 frames of 20 ms."""
        self._audio_cb = callback

    def on_wire_audio(self, callback: Callable[[np.ndarray], None] | None) -> None:
        """Observe the caller's audio as received (16 kHz int16 frames of 20 ms): recording."""
        self._wire_cb = callback

    def on_sent_audio(self, callback: Callable[[np.ndarray], None] | None) -> None:
        """Observe the bot's audio as sent (16 kHz int16 frames of 20 ms, silence included): recording."""
        self._sent_cb = callback

    def _sent(self, frame: np.ndarray) -> None:
        if self._sent_cb is not None:
            self._sent_cb(frame)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._reader is None:
            self._reader = asyncio.ensure_future(self._read_caller_audio(track))

    async def _read_caller_audio(self, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=APP_RATE)
        chunker = FrameChunker()
        try:
            while True:
                frame = await track.recv()
                for converted in resampler.resample(cast(av.AudioFrame, frame)):  # audio tracks yield audio frames
                    pcm = converted.to_ndarray().reshape(-1).astype(np.int16, copy=False)
                    for chunk in chunker.push(pcm):
                        if self._audio_cb is not None:
                            self._audio_cb(chunk)
                        if self._live_cb is not None:
                            self._live_cb(chunk)
                        if self._wire_cb is not None:
                            self._wire_cb(chunk)
        except MediaStreamError:
            return  # the browser's track ended
        except Exception:  # noqa: BLE001 - a decoder fault must not kill the call silently
            log.exception("caller audio reader failed", extra={"fields": {"call_id": self._call_id}})

    # ------------------------------------------------------------------ bot audio
    def play(self, pcm: np.ndarray, rate: int) -> None:
        """Queue int16 mono audio at ``rate`` Hz after what is already queued."""
        array = np.asarray(pcm)
        if array.dtype != np.int16 or array.ndim != 1:
            raise TypeError(f"play expects 1-D int16 PCM, got {array.dtype} with shape {array.shape}")
        if rate != APP_RATE:
            array = resample(array, rate, APP_RATE)
        if not array.size or self.ended.is_set():
            return
        self._playback_done.clear()
        self.outbound.queue.append(array)

    def stop_playback(self) -> None:
        self.outbound.queue.clear()
        self._playback_done.set()

    @property
    def playing(self) -> bool:
        return self.outbound.queue.pending > 0

    async def wait_playback(self) -> None:
        await self._playback_done.wait()

    # ------------------------------------------------------------------ relaying (LiveLeg)
    @property
    def live_rate(self) -> int:
        return APP_RATE

    @property
    def wire_codec(self) -> str | None:
        return None  # Opus, decoded by aiortc: a bridge always resamples

    def on_live_audio(self, callback: Callable[[np.ndarray], None] | None) -> None:
        """The browser's audio for a bridge: 16 kHz int16 frames of 20 ms (alongside ``on_audio``)."""
        self._live_cb = callback

    def play_live(self, pcm: np.ndarray, max_backlog_frames: int) -> None:
        """Queue relayed 16 kHz audio; beyond ``max_backlog_frames`` waiting, what waits is dropped first."""
        if self.outbound.queue.pending > max_backlog_frames * FRAME_SAMPLES:
            self.stop_playback()
        self.play(pcm, APP_RATE)

    # ------------------------------------------------------------------ data channel
    def attach_data_channel(self, channel: RTCDataChannel) -> None:
        """Use ``channel`` (opened by the page) for keypad, hang-up and captions."""
        self._data_channel = channel
        channel.on("message", self._on_message)
        channel.on("open", self._flush_backlog)
        if channel.readyState == "open":
            self._flush_backlog()

    def _on_message(self, raw: str | bytes) -> None:
        try:
            message = parse_message(raw)
        except ProtocolError as exc:
            log.warning("bad data-channel message: %s", exc, extra={"fields": {"call_id": self._call_id}})
            return
        if isinstance(message, DtmfMessage):
            event = Dtmf(message.digit, "datachannel")
            self.digits_received.append(event)
            self._events.put(event)
        elif isinstance(message, HangupMessage):
            self._end(message.reason or "caller hung up")

    def _send(self, message: ControlMessage) -> None:
        text = encode_message(message)
        channel = self._data_channel
        if channel is not None and channel.readyState == "open":
            channel.send(text)
        else:
            self._backlog.append(text)

    def _flush_backlog(self) -> None:
        channel = self._data_channel
        while self._backlog and channel is not None and channel.readyState == "open":
            channel.send(self._backlog.popleft())

    def caption(self, who: str, text: str) -> None:
        """Show ``text`` in the page's live captions; ``who`` is "bot" (said) or "caller" (heard)."""
        if not self.ended.is_set():
            self._send(CaptionMessage(who=who, text=text))

    # ------------------------------------------------------------------ events and control
    async def next_event(self, timeout: float | None) -> ChannelEvent | None:
        return await self._events.next(timeout)

    def _on_connection_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self._end(f"connection {self.pc.connectionState}")

    def _end(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self.end_reason = reason
        self.ended.set()
        self.stop_playback()
        self._events.put(HungUp(reason))

    async def hangup(self) -> None:
        """End the call from the server side: tell the page, then close the peer connection."""
        await self.end("bot hangup")

    async def end(self, reason: str) -> None:
        """Hang up with ``reason`` (shown by the page), then close the peer connection."""
        if not self.ended.is_set():
            self._send(HangupMessage(reason=reason))
            await asyncio.sleep(0.05)  # let SCTP carry the hang-up message before the transport closes
            self._end(reason)
        await self.close()

    async def close(self) -> None:
        """Release the peer connection (idempotent)."""
        self._end(self.end_reason or "closed")
        self.outbound.stop()
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()

    async def transfer(self, target: str) -> bool:
        """Browser callers cannot be blind-transferred (no REFER on WebRTC): always False."""
        log.info("transfer not supported on WebRTC", extra={"fields": {"call_id": self._call_id, "target": target}})
        return False
