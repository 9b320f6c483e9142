"""Recognition for live transcripts at a lower priority than the bot's own turns.

The bot's listens call the speech workers directly; live-transcript utterances wait here instead, in one bounded
queue for the whole process, and are sent to a worker only when one is free (``busy()`` false) and fewer than
``max_in_flight`` of them are already being recognised. So a bot turn never queues behind more than
``max_in_flight`` live utterances, and when the workers are saturated live lines come later, then not at all:
beyond ``max_pending`` the oldest waiting utterance of the lowest priority is dropped, and one that waited longer
than ``max_age_s`` is dropped unheard. Every drop is counted (``stats``) and told to its call (``on_drop``).
Among waiting utterances a higher ``priority`` goes first (the agent's lines: their quality alerts are the
time-critical output), in order of arrival within a priority.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("voicebot.handoff.live")

Transcribe = Callable[[np.ndarray, str | None], Awaitable[str]]


@dataclass
class LiveJob:
    """One utterance to recognise: 16 kHz audio, its language, and where the text (or the drop) goes."""

    audio: np.ndarray
    lang: str | None
    on_text: Callable[[str], Awaitable[None]]
    on_drop: Callable[[str], None] = lambda _reason: None
    priority: int = 0  # higher is recognised first
    queued_at: float = 0.0


@dataclass
class LiveAsrStats:
    queued: int = 0
    transcribed: int = 0
    dropped_full: int = 0  # the queue was full: the oldest waiting utterance went
    dropped_stale: int = 0  # waited longer than max_age_s for a free worker
    failed: int = 0
    deferred: int = 0  # times an utterance waited because every speech worker was busy

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class LiveAsr:
    transcribe: Transcribe
    busy: Callable[[], bool]
    max_pending: int = 8
    max_in_flight: int = 1
    max_age_s: float = 15.0
    poll_s: float = 0.05
    clock: Callable[[], float] = time.monotonic
    stats: LiveAsrStats = field(default_factory=LiveAsrStats)

    def __post_init__(self) -> None:
        if self.max_pending < 1 or self.max_in_flight < 1:
            raise ValueError("max_pending and max_in_flight must be >= 1")
        self._pending: list[LiveJob] = []  # in arrival order
        self._started = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        """Recognise what is queued from now on (a task runs only while utterances wait: none at shutdown)."""
        self._started = True
        self._kick()

    def _kick(self) -> None:
        if self._started and self._pending and (self._runner is None or self._runner.done()):
            self._runner = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        tasks = [t for t in [self._runner, *self._tasks] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runner = None

    def submit(self, job: LiveJob) -> None:
        """Queue ``job`` (never waits); a full queue drops its oldest utterance."""
        job.queued_at = self.clock()
        self.stats.queued += 1
        if len(self._pending) >= self.max_pending:
            lowest = min(j.priority for j in self._pending)
            oldest = next(i for i, j in enumerate(self._pending) if j.priority == lowest)
            self._drop(self._pending.pop(oldest), "queue full")
        self._pending.append(job)
        self._kick()

    def _drop(self, job: LiveJob, reason: str) -> None:
        if reason == "queue full":
            self.stats.dropped_full += 1
        else:
            self.stats.dropped_stale += 1
        log.info("live transcript utterance dropped", extra={"fields": {"reason": reason, **self.stats.as_dict()}})
        job.on_drop(reason)

    def _free(self) -> bool:
        return self._in_flight < self.max_in_flight and not self.busy()

    async def _run(self) -> None:
        while self._pending:
            if not self._free():
                self.stats.deferred += 1
                while not self._free():  # the bot's turns (and live jobs in flight) go first
                    await asyncio.sleep(self.poll_s)
                continue  # the queue may have changed meanwhile
            highest = max(j.priority for j in self._pending)
            job = self._pending.pop(next(i for i, j in enumerate(self._pending) if j.priority == highest))
            if self.clock() - job.queued_at > self.max_age_s:
                self._drop(job, "too old")
                continue
            self._in_flight += 1
            task = asyncio.ensure_future(self._recognise(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _recognise(self, job: LiveJob) -> None:
        try:
            text = await self.transcribe(job.audio, job.lang)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a crashed worker costs one line, never the call
            self.stats.failed += 1
            log.warning("live transcript utterance not recognised: %s", exc)
            job.on_drop("failed")
            return
        finally:
            self._in_flight -= 1
        self.stats.transcribed += 1
        try:
            await job.on_text(text)
        except Exception:  # noqa: BLE001 - a failing sink must not stop the queue
            log.exception("live transcript line not delivered")
