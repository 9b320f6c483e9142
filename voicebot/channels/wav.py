"""WavChannel: a caller played from a WAV file (or array), the bot recorded to a WAV — for tests and benchmarks.

The channel owns a 20 ms clock paced by asyncio (real time, or ``speed`` times faster). Every tick it hands one
16 kHz caller frame to the session, releases scripted DTMF whose time has come, and takes 20 ms of queued bot
audio, which it writes into the recording at the same tick. All times (events, bot segments, the recording) are on
the caller's timeline: second ``t`` of the input WAV is second ``t`` of the output WAV, whatever the speed.
At the end of the input plus ``tail_s`` the caller hangs up.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile

from voicebot.channels.base import ChannelEvent, Dtmf, EventInbox, HungUp
from voicebot.speech.resample import resample

RATE = 16000
FRAME_MS = 20
FRAME = RATE * FRAME_MS // 1000
DTMF_DIGITS = re.compile(r"^[0-9*#A-D]$")


@dataclass(frozen=True)
class TimelineEvent:
    """Something that happened at ``at_s`` seconds of the caller timeline."""

    at_s: float
    kind: str  # dtmf | play | stop_playback | transfer | bot_hangup | caller_hangup
    detail: str = ""


@dataclass
class BotSegment:
    """One stretch of continuous bot audio: ``start_s`` → ``end_s`` on the caller timeline."""

    start_s: float
    end_s: float | None = None
    stopped: bool = False  # cut short by stop_playback (barge-in) rather than played to the end


def load_caller_audio(source: np.ndarray | str | Path, rate: int | None = None) -> np.ndarray:
    """Caller audio as 16 kHz int16 mono from a WAV path (any rate, channels mixed down) or an int16 array."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"caller WAV {path} does not exist")
        data, file_rate = soundfile.read(str(path), dtype="int16", always_2d=True)
        pcm = data.mean(axis=1).astype(np.int16) if data.shape[1] > 1 else data[:, 0]
        rate = file_rate
    else:
        if rate is None:
            raise ValueError("caller audio given as an array needs its sample rate (rate=...)")
        pcm = np.asarray(source)
        if pcm.ndim != 1:
            raise ValueError(f"caller audio must be mono (1-D), got shape {pcm.shape}")
        if pcm.dtype != np.int16:
            raise ValueError(f"caller audio must be int16 PCM, got {pcm.dtype}")
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    return resample(pcm, rate, RATE) if rate != RATE else pcm.copy()


class WavChannel:
    """The Channel protocol over a caller WAV. Starts its clock on :meth:`start` or when the session subscribes."""

    def __init__(self, caller: np.ndarray | str | Path, rate: int | None = None, *,
                 dtmf: Sequence[tuple[float, str]] = (), tail_s: float = 2.0, speed: float = 1.0,
                 record_path: str | Path | None = None, call_id: str = "wav-call",
                 transfer_accepted: bool = True) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        if tail_s < 0:
            raise ValueError(f"tail_s must be >= 0, got {tail_s}")
        for at_s, digit in dtmf:
            if at_s < 0 or not DTMF_DIGITS.match(digit):
                raise ValueError(f"bad scripted DTMF ({at_s!r}, {digit!r}): need time >= 0 and one of 0-9 * # A-D")
        self.caller = load_caller_audio(caller, rate)
        self.speed = speed
        self.record_path = Path(record_path) if record_path is not None else None
        self.transfer_accepted = transfer_accepted
        self._call_id = call_id
        self._total_ticks = -(-(len(self.caller) + int(tail_s * RATE)) // FRAME)
        self._dtmf = deque(sorted(dtmf))
        self._bot_out = np.zeros(self._total_ticks * FRAME, dtype=np.int16)
        self._queue: deque[np.ndarray] = deque()
        self._inbox = EventInbox()
        self._playback_done = asyncio.Event()
        self._playback_done.set()
        self._audio_cb: Callable[[np.ndarray], None] | None = None
        self._clock: asyncio.Task[None] | None = None
        self._tick = 0
        self.ended: str | None = None  # why the call ended: "caller hangup" / "bot hangup"
        self.events: list[TimelineEvent] = []
        self.bot_segments: list[BotSegment] = []
        self.transfers: list[str] = []

    # ------------------------------------------------------------------ clock
    @property
    def call_id(self) -> str:
        return self._call_id

    @property
    def now_s(self) -> float:
        """Current position on the caller timeline (seconds)."""
        return self._tick * FRAME_MS / 1000

    @property
    def duration_s(self) -> float:
        """Input plus tail: when the caller hangs up unless the bot does first."""
        return self._total_ticks * FRAME_MS / 1000

    def start(self) -> None:
        """Start the 20 ms clock (idempotent; needs a running event loop)."""
        if self._clock is None:
            self._clock = asyncio.get_running_loop().create_task(self._run())

    async def wait_closed(self) -> None:
        """Return once the call has ended and the recording is written."""
        if self._clock is not None:
            await asyncio.shield(self._clock)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = FRAME_MS / 1000 / self.speed
        started = loop.time()
        try:
            while self.ended is None and self._tick < self._total_ticks:
                due = started + self._tick * period
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._step()
            if self.ended is None:
                self._end("caller hangup")
                self._inbox.put(HungUp("caller hung up"))
        finally:
            self._write_recording()

    def _step(self) -> None:
        now = self.now_s
        while self._dtmf and self._dtmf[0][0] <= now:
            _, digit = self._dtmf.popleft()
            self._note("dtmf", digit)
            self._inbox.put(Dtmf(digit, "wav"))
        offset = self._tick * FRAME
        if self._audio_cb is not None:
            frame = self.caller[offset:offset + FRAME]
            if len(frame) < FRAME:
                frame = np.concatenate([frame, np.zeros(FRAME - len(frame), np.int16)])
            self._audio_cb(frame)
        self._bot_out[offset:offset + FRAME] = self._take_bot_frame()
        self._tick += 1
        if not self._queue and self.bot_segments and self.bot_segments[-1].end_s is None:
            self.bot_segments[-1].end_s = self.now_s
            self._playback_done.set()

    def _take_bot_frame(self) -> np.ndarray:
        out = np.zeros(FRAME, np.int16)
        filled = 0
        while filled < FRAME and self._queue:
            head = self._queue[0]
            take = min(FRAME - filled, len(head))
            out[filled:filled + take] = head[:take]
            filled += take
            if take == len(head):
                self._queue.popleft()
            else:
                self._queue[0] = head[take:]
        return out

    def _note(self, kind: str, detail: str = "") -> None:
        self.events.append(TimelineEvent(round(self.now_s, 3), kind, detail))

    def _end(self, reason: str) -> None:
        if self.ended is not None:
            return
        self.ended = reason
        self._note("bot_hangup" if reason == "bot hangup" else "caller_hangup")
        self._close_segment(stopped=bool(self._queue))
        self._queue.clear()
        self._playback_done.set()

    def _close_segment(self, stopped: bool) -> None:
        if self.bot_segments and self.bot_segments[-1].end_s is None:
            self.bot_segments[-1].end_s = self.now_s
            self.bot_segments[-1].stopped = stopped

    # ------------------------------------------------------------------ Channel protocol
    def play(self, pcm: np.ndarray, rate: int) -> None:
        if self.ended is not None:
            return
        audio = resample(pcm, rate, RATE) if rate != RATE else np.asarray(pcm, dtype=np.int16)
        if len(audio) == 0:
            return
        if not self._queue:
            self.bot_segments.append(BotSegment(self.now_s))
        self._queue.append(audio)
        self._playback_done.clear()
        self._note("play", f"{len(audio) / RATE:.2f}s")

    def stop_playback(self) -> None:
        if self._queue:
            self._note("stop_playback")
            self._close_segment(stopped=True)
        self._queue.clear()
        self._playback_done.set()

    @property
    def playing(self) -> bool:
        return bool(self._queue)

    async def wait_playback(self) -> None:
        await self._playback_done.wait()

    async def next_event(self, timeout: float | None) -> ChannelEvent | None:
        return await self._inbox.next(timeout)

    def on_audio(self, callback: Callable[[np.ndarray], None] | None) -> None:
        self._audio_cb = callback
        if callback is not None:
            self.start()

    async def hangup(self) -> None:
        if self.ended is None:
            self._end("bot hangup")
            self._inbox.put(HungUp("bot hangup"))
            if self._clock is None:
                self._write_recording()
        await self.wait_closed()

    def caller_hangup(self) -> None:
        """The caller hangs up now (before the end of the input)."""
        if self.ended is None:
            self._end("caller hangup")
            self._inbox.put(HungUp("caller hung up"))

    async def transfer(self, target: str) -> bool:
        self._note("transfer", target)
        self.transfers.append(target)
        return self.transfer_accepted

    # ------------------------------------------------------------------ results
    def recording(self) -> np.ndarray:
        """Stereo int16 (samples, 2) at 16 kHz up to now: left = caller as sent, right = bot as played."""
        length = self._tick * FRAME
        caller = np.zeros(length, np.int16)
        head = self.caller[:length]
        caller[:len(head)] = head
        return np.stack([caller, self._bot_out[:length]], axis=1)

    def bot_audio_after(self, at_s: float) -> float | None:
        """Caller-timeline second when bot audio next started at or after ``at_s`` (None: it never did)."""
        for segment in self.bot_segments:
            if segment.start_s >= at_s:
                return segment.start_s
        return None

    def _write_recording(self) -> None:
        if self.record_path is not None:
            self.record_path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(str(self.record_path), self.recording(), RATE, subtype="PCM_16")
