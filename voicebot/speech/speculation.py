"""Speculative recognition for one listen: decode during the end-of-speech hangover, at most one decode in flight.

The endpointer announces each pause (a revision with the audio so far). Its decode starts at once unless an earlier
one is still running in a worker (a decode cannot be stopped once running: cancelling it only wastes the CPU it
already used); then the newest revision waits and starts when the worker job ends, and revisions overtaken
meanwhile are never decoded. The result of the revision that ends the utterance is reused, so the recognition
left after the endpoint is usually nothing. Its engine job is speculative (it waits behind jobs that callers wait
on, voicebot.speech.scheduling) until the turn ends on its revision; then it is urgent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import numpy as np

from voicebot.speech.scheduling import CURRENT_TICKET, Ticket
from voicebot.speech.services import Utterance

log = logging.getLogger("voicebot.speech.speculation")

Transcribe = Callable[[np.ndarray], Awaitable[Utterance]]


class Speculation:
    """`start`/`cancel` from the endpointer's events, `result` to peek, `final` at the endpoint, `close` at the end."""

    def __init__(self, transcribe: Transcribe, on_result: Callable[[], None] = lambda: None,
                 busy: Callable[[], bool] = lambda: False) -> None:
        self._transcribe = transcribe
        self._on_result = on_result
        self._busy = busy  # True: the engines are saturated, a pause's decode waits for `kick` (or the endpoint)
        self._running: tuple[int, asyncio.Task[Utterance]] | None = None
        self._tickets: dict[int, Ticket] = {}  # the engines' rank of each revision's decode (speculative, urgent)
        self._awaited: int | None = None  # the revision the turn ended on: its decode is urgent
        self._queued: tuple[int, np.ndarray] | None = None
        self._results: dict[int, Utterance | BaseException] = {}
        self._live: int | None = None  # the revision whose result is still wanted
        self.decodes = 0  # decodes started (speculative ones, for the call record)
        self.stale = 0  # decodes whose audio was overtaken by more speech

    def start(self, revision: int, audio: np.ndarray) -> None:
        """A pause began: decode ``audio`` now, or as soon as the decode in flight ends."""
        self._live = revision
        if (self._running is not None and not self._running[1].done()) or self._busy():
            self._queued = (revision, audio)
        else:
            self._launch(revision, audio)

    def kick(self, revision: int) -> None:
        """The pause has lasted long enough to be worth a decode even on saturated engines: start it if waiting."""
        if self._queued is not None and self._queued[0] == revision and (
                self._running is None or self._running[1].done()):
            queued, self._queued = self._queued, None
            self._launch(*queued)

    def cancel(self, revision: int) -> None:
        """Speech resumed: the result of ``revision`` will not be used (a running decode finishes unheeded)."""
        if self._live == revision:
            self._live = None
        if self._queued is not None and self._queued[0] == revision:
            self._queued = None
        if self._running is not None and self._running[0] == revision:
            self.stale += 1

    def result(self, revision: int) -> Utterance | None:
        """The finished decode of ``revision`` (None while it runs, waits or failed)."""
        result = self._results.get(revision)
        return result if isinstance(result, Utterance) else None

    async def final(self, revision: int | None, audio: np.ndarray) -> tuple[Utterance, bool]:
        """The recognition of the finished utterance, and whether it came from speculation.

        ``revision`` None (e.g. a maximum-length utterance): decoded now. The error of a failed speculative decode
        of ``revision`` (e.g. EngineCrashed) is raised, as a decode at the endpoint would have.
        """
        if revision is not None:
            self._awaited = revision  # the caller now waits on it: it goes before others' speculative decodes
            if revision in self._tickets:
                self._tickets[revision].urgent = True
            if self._queued is not None and self._queued[0] == revision:
                await self._wait_running()
                if self._queued is not None and self._queued[0] == revision:  # deferred (busy) or not yet started
                    queued, self._queued = self._queued, None
                    self._launch(*queued, urgent=True)
            running = self._running
            if running is not None and running[0] == revision:
                await asyncio.wait({running[1]})
            if revision in self._results:
                result = self._results[revision]
                if isinstance(result, BaseException):
                    raise result
                return result, True
        self.decodes += 1
        return await self._transcribe(audio), False

    def close(self) -> None:
        """The listen is over: forget queued audio; a decode in flight finishes in its worker unheeded."""
        self._queued = None
        self._live = None
        if self._running is not None and not self._running[1].done():
            self._running[1].cancel()
        self._running = None

    async def _wait_running(self) -> None:
        if self._running is not None and not self._running[1].done():
            await asyncio.wait({self._running[1]})

    def _launch(self, revision: int, audio: np.ndarray, urgent: bool = False) -> None:
        self.decodes += 1
        ticket = self._tickets[revision] = Ticket(urgent or revision == self._awaited)
        token = CURRENT_TICKET.set(ticket)  # the task copies this context: its engine job carries the ticket
        try:
            task = asyncio.ensure_future(self._transcribe(audio))
        finally:
            CURRENT_TICKET.reset(token)
        self._running = (revision, task)
        task.add_done_callback(lambda done, rev=revision: self._finished(rev, done))

    def _finished(self, revision: int, task: asyncio.Task[Utterance]) -> None:
        self._tickets.pop(revision, None)
        if self._running is not None and self._running[1] is task:
            self._running = None
        if not task.cancelled():
            error = task.exception()
            if self._live == revision:  # an overtaken revision's result is never used
                self._results = {revision: task.result() if error is None else error}
            if error is not None:
                log.warning("speculative recognition failed: %s", error)
        if self._queued is not None and not self._busy():
            queued, self._queued = self._queued, None
            self._launch(*queued)
        if self._live == revision:
            self._on_result()
