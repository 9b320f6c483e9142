"""Speech engines in worker processes, so CTranslate2/onnxruntime never starve the event loop's 20 ms ticker.

Each worker is its own single-process executor (spawned, models loaded and warmed once by the initializer,
one CPU thread each). Jobs wait in the server (voicebot.speech.scheduling) and go to a worker when it is idle:
urgent ones (a caller waits on them) before speculative ones, oldest first; a job its caller abandoned while
it waited is dropped unrun. If a worker process dies, only the jobs it held
fail, with `EngineCrashed`; the worker is replaced at once and later calls proceed normally.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voicebot.speech.asr import AsrResult
from voicebot.speech.grammar import Grammar
from voicebot.speech.resample import resample
from voicebot.speech.scheduling import CURRENT_TICKET, JobQueue, prometheus_waits
from voicebot.speech.voices import VoiceSpec, default_voices


log = logging.getLogger("voicebot.speech.workers")

class EngineCrashed(RuntimeError):
    """A speech worker process died while (or before) running this job. The worker has been replaced."""


def default_pool_voices() -> dict[str, VoiceSpec]:
    """Voices a pool loads when none are named: English only. Every voice costs start-up time and memory in
    every worker, so callers name the ones their dialplans speak (e.g. `voices={"zh": default_voices()["zh"]}`)."""
    return {"en": default_voices()["en"]}


@dataclass(frozen=True)
class WorkerConfig:
    asr_models: tuple[str, ...] = ("base",)
    voices: Mapping[str, VoiceSpec] = field(default_factory=default_pool_voices)
    compute_type: str = "int8"
    asr_window_s: float | None = None  # None: the model's English window (voicebot.speech.asr)


# ---------------------------------------------------------------- inside the worker process

_ENGINES: dict[str, Any] = {}


def _exit_with_parent(parent_pid: int, every_s: float = 1.0) -> None:
    """A worker whose server died (kill -9, crash) exits instead of lingering with its models loaded."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _load_engines(config: WorkerConfig) -> None:
    """Process initializer: load and warm every configured engine once."""
    from voicebot.speech.asr import WhisperAsr

    _exit_with_parent(os.getppid())

    for name in config.asr_models:
        _ENGINES[f"asr:{name}"] = WhisperAsr(name, compute_type=config.compute_type, cpu_threads=1,
                                             window_s=config.asr_window_s)
    for name, spec in config.voices.items():
        _ENGINES[f"tts:{name}"] = spec.load(threads=1)


def _engine(kind: str, name: str) -> Any:
    try:
        return _ENGINES[f"{kind}:{name}"]
    except KeyError:
        loaded = sorted(key.split(":", 1)[1] for key in _ENGINES if key.startswith(kind))
        raise ValueError(f"{kind.upper()} engine {name!r} is not loaded in the workers; loaded: {loaded}") from None


def _worker_pid() -> int:
    return os.getpid()


def _transcribe(pcm16k: np.ndarray, language: str | None, model: str, hints: str | None,
                likely_language: str | None = None, grammar: Grammar | None = None) -> AsrResult:
    return _engine("asr", model).transcribe(pcm16k, language=language, hints=hints, likely_language=likely_language,
                                            grammar=grammar)


def _synthesize(text: str, voice: str, rate: int | None) -> tuple[np.ndarray, int]:
    pcm, engine_rate = _engine("tts", voice).synthesize(text)
    if rate is None or rate == engine_rate:
        return pcm, engine_rate
    return resample(pcm, engine_rate, rate), rate  # here, not in the server's event loop (~20 ms a sentence)


# ---------------------------------------------------------------- in the server process


def _release(worker: _Worker) -> None:
    worker.pending -= 1


def _call_soon(loop: asyncio.AbstractEventLoop, function: Any, *args: Any) -> None:
    """From an executor thread: run ``function`` on ``loop`` (dropped if the loop has closed meanwhile)."""
    try:
        loop.call_soon_threadsafe(function, *args)
    except RuntimeError:
        pass


class _Worker:
    def __init__(self, config: WorkerConfig) -> None:
        self.executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_load_engines,
            initargs=(config,),
        )
        self.pending = 0
        self.pid: int | None = None
        self.ready: asyncio.Task[None] | None = None


def _processes(worker: _Worker) -> list[Any]:
    """The worker's process (multiprocessing.Process), from the executor's own record."""
    return list((getattr(worker.executor, "_processes", None) or {}).values())


class SpeechWorkerPool:
    """`async with SpeechWorkerPool(size) as pool: await pool.transcribe(pcm16k)`; size defaults to the cores."""

    def __init__(
        self,
        size: int | None = None,
        asr_models: Sequence[str] = ("base",),
        voices: Mapping[str, VoiceSpec] | None = None,
        compute_type: str = "int8",
        asr_window_s: float | None = None,
    ) -> None:
        size = size if size is not None else (os.cpu_count() or 1)
        if size < 1:
            raise ValueError(f"worker pool size must be >= 1, got {size}")
        chosen_voices = dict(voices) if voices is not None else default_pool_voices()
        self.config = WorkerConfig(tuple(asr_models), chosen_voices, compute_type, asr_window_s)
        self.size = size
        self._workers: list[_Worker] = []
        self._queue: JobQueue[tuple[Any, tuple[Any, ...], asyncio.Future[Any]]] = JobQueue()
        self.crashes = 0

    async def start(self) -> None:
        """Spawn the workers and wait until every one has loaded and warmed its models."""
        if self._workers:
            return
        self._workers = [_Worker(self.config) for _ in range(self.size)]
        try:
            await asyncio.gather(*(self._learn_pid(worker) for worker in self._workers))
        except BrokenProcessPool:
            await self.close()
            raise EngineCrashed("speech workers died while loading their engines (see their stderr)") from None

    async def wait_ready(self) -> None:
        """Wait until replacement workers (after a crash) have loaded their engines."""
        await asyncio.gather(*(w.ready for w in self._workers if w.ready is not None))

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop the workers: queued jobs are cancelled; a job still running gets ``timeout_s`` to finish, then its
        process is killed. (``shutdown(wait=True)`` after ``wait=False`` returns at once, and the job then held
        the interpreter's exit, which joins the executor's thread, for as long as it ran.)"""
        workers, self._workers = self._workers, []
        while (queued := self._queue.pop(time.monotonic())) is not None:  # never handed to a worker
            handed = queued.payload[2]
            if not handed.done():
                handed.set_exception(EngineCrashed("speech job was queued when the pool was closed"))
        processes = [p for worker in workers for p in _processes(worker)]  # shutdown() forgets them
        for worker in workers:
            worker.executor.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout_s
        for process in processes:
            await asyncio.to_thread(process.join, max(0.0, deadline - time.monotonic()))
        busy = [p for p in processes if p.is_alive()]
        if busy:
            log.warning("speech workers still busy at shutdown: killed", extra={"fields": {
                "workers": len(busy), "timeout_s": timeout_s}})
            for process in busy:
                process.kill()
            for process in busy:
                await asyncio.to_thread(process.join, timeout_s)

    async def __aenter__(self) -> SpeechWorkerPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def saturated(self) -> bool:
        """True when every worker has a job (a new one would queue)."""
        return bool(self._workers) and all(worker.pending > 0 for worker in self._workers)

    def worker_pids(self) -> list[int | None]:
        return [worker.pid for worker in self._workers]

    async def transcribe(
        self, pcm16k: np.ndarray, language: str | None = None, model: str | None = None, hints: str | None = None,
        likely_language: str | None = None, grammar: Grammar | None = None,
    ) -> AsrResult:
        """Recognise 16 kHz audio in a worker (model defaults to the first configured ASR model); `grammar`: the
        listen's expected answers, recognised first."""
        chosen = model or self.config.asr_models[0]
        result: AsrResult = await self._run("transcribe", _transcribe, pcm16k, language, chosen, hints,
                                            likely_language, grammar)
        return result

    async def synthesize(self, text: str, voice: str = "en", rate: int | None = None) -> tuple[np.ndarray, int]:
        """Speak `text` with `voice` in a worker; returns (int16 PCM, sample rate) — resampled there to `rate`."""
        audio: tuple[np.ndarray, int] = await self._run("synthesize", _synthesize, text, voice, rate)
        return audio

    async def _run(self, job: str, function: Any, *args: Any) -> Any:
        if not self._workers:
            raise RuntimeError("SpeechWorkerPool is not started; use `async with` or await start()")
        loop = asyncio.get_running_loop()
        handed: asyncio.Future[tuple[int, _Worker, Future[Any]]] = loop.create_future()
        queued = self._queue.push((function, args, handed), "asr" if job == "transcribe" else "tts",
                                  time.monotonic(), CURRENT_TICKET.get(), abandoned=handed.done)
        self._dispatch()
        try:
            index, worker, future = await handed
        except asyncio.CancelledError:
            self._queue.remove(queued)  # never handed to a worker: it costs no CPU
            raise
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            pid = worker.pid
            if not self._workers:  # close() stopped it: nothing to replace
                raise EngineCrashed(f"speech worker (pid {pid}) stopped during {job}: the pool was closed") from None
            self._replace(index, worker)
            raise EngineCrashed(f"speech worker (pid {pid}) died during {job}; it has been replaced") from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and not self._workers and (task is None or not task.cancelling()):
                # close() cancelled the job while it still waited in the executor's queue, not our caller
                raise EngineCrashed(f"speech {job} was queued when the pool was closed") from None
            raise  # a job cancelled while running keeps its worker busy until it ends (see _dispatch)

    def _dispatch(self) -> None:
        """Hand queued jobs to idle workers, most urgent and oldest first (voicebot.speech.scheduling)."""
        loop = asyncio.get_running_loop()
        while len(self._queue):
            idle = [i for i, worker in enumerate(self._workers) if worker.pending == 0]
            if not idle:
                return
            queued = self._queue.pop(time.monotonic())
            if queued is None:
                return
            function, args, handed = queued.payload
            index = idle[0]
            worker = self._workers[index]
            try:
                future: Future[Any] = worker.executor.submit(function, *args)
            except BrokenProcessPool:  # died while idle: replace it and use the fresh one
                worker = self._replace(index, worker)
                future = worker.executor.submit(function, *args)
            worker.pending += 1
            future.add_done_callback(functools.partial(self._job_handed_back, loop, worker))
            handed.set_result((index, worker, future))

    def _job_handed_back(self, loop: asyncio.AbstractEventLoop, worker: _Worker, _future: Future[Any]) -> None:
        _call_soon(loop, self._job_done, worker)  # from the executor's thread

    def _job_done(self, worker: _Worker) -> None:
        _release(worker)
        if self._workers:
            self._dispatch()

    def queue_wait_metrics(self) -> str:
        """Prometheus text: how long speech jobs waited for a worker (the saturation of the speech engines)."""
        now = time.monotonic()
        return prometheus_waits(self._queue, len(self._queue), self._queue.oldest_wait_s(now), len(self._workers),
                                sum(1 for worker in self._workers if worker.pending > 0))

    def _replace(self, index: int, dead: _Worker) -> _Worker:
        if index < len(self._workers) and self._workers[index] is dead:
            self.crashes += 1
            log.warning("speech worker died; starting a replacement",
                        extra={"fields": {"pid": dead.pid, "crashes": self.crashes}})
            dead.executor.shutdown(wait=False, cancel_futures=True)
            fresh = _Worker(self.config)
            fresh.ready = asyncio.create_task(self._learn_pid(fresh))  # loads in the background
            self._workers[index] = fresh
        return self._workers[index]

    @staticmethod
    async def _learn_pid(worker: _Worker) -> None:
        worker.pid = await asyncio.wrap_future(worker.executor.submit(_worker_pid))
