"""LiveAsr: live-transcript utterances yield the speech workers to the bot's turns, stay bounded, and count drops."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voicebot.handoff.live_asr import LiveAsr, LiveJob


class FakeWorkers:
    """Stands in for the speech pool: `busy` is what the pool reports; each job waits until released."""

    def __init__(self) -> None:
        self.busy = False
        self.started: list[str] = []
        self.release: asyncio.Queue[str] = asyncio.Queue()

    async def transcribe(self, audio: np.ndarray, lang: str | None) -> str:
        name = f"utterance {int(audio[0])}"
        self.started.append(name)
        await self.release.get()
        return name


def job(n: int, heard: list[str], dropped: list[str] | None = None) -> LiveJob:
    async def on_text(text: str) -> None:
        heard.append(text)
    return LiveJob(np.full(160, n, np.int16), "en-US", on_text,
                   on_drop=(lambda reason: dropped.append(f"{n}:{reason}")) if dropped is not None else (lambda _r: None))


async def until(condition, timeout: float = 2.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


@pytest.mark.asyncio
async def test_live_utterances_wait_while_the_workers_are_busy_with_the_bots_turns() -> None:
    workers = FakeWorkers()
    workers.busy = True  # the bot's listens hold every worker
    asr = LiveAsr(workers.transcribe, lambda: workers.busy, poll_s=0.01)
    asr.start()
    heard: list[str] = []
    asr.submit(job(1, heard))
    await asyncio.sleep(0.1)  # ten polls: the busy pool never got a live job
    assert workers.started == [] and asr.stats.deferred == 1
    workers.busy = False
    await until(lambda: workers.started == ["utterance 1"])
    await workers.release.put("go")
    await until(lambda: heard == ["utterance 1"])
    assert asr.stats.transcribed == 1
    await asr.close()


@pytest.mark.asyncio
async def test_at_most_max_in_flight_live_jobs_run_at_once_and_order_is_kept() -> None:
    workers = FakeWorkers()
    asr = LiveAsr(workers.transcribe, lambda: workers.busy, max_in_flight=1, poll_s=0.01)
    asr.start()
    heard: list[str] = []
    for n in (1, 2, 3):
        asr.submit(job(n, heard))
    await until(lambda: workers.started == ["utterance 1"])
    await asyncio.sleep(0.05)
    assert workers.started == ["utterance 1"]  # the others wait: a bot turn never queues behind more than one
    for _ in range(3):
        await workers.release.put("go")
    await until(lambda: len(heard) == 3)
    assert heard == ["utterance 1", "utterance 2", "utterance 3"]
    await asr.close()


@pytest.mark.asyncio
async def test_a_full_queue_drops_the_oldest_and_old_utterances_are_dropped_unheard() -> None:
    now = [0.0]
    workers = FakeWorkers()
    workers.busy = True
    asr = LiveAsr(workers.transcribe, lambda: workers.busy, max_pending=2, max_age_s=10.0, poll_s=0.01,
                  clock=lambda: now[0])
    asr.start()
    heard: list[str] = []
    dropped: list[str] = []
    asr.submit(job(1, heard, dropped))
    now[0] = 5.0
    asr.submit(job(2, heard, dropped))
    asr.submit(job(3, heard, dropped))  # full: 1 goes
    assert dropped == ["1:queue full"] and asr.pending == 2 and asr.stats.dropped_full == 1
    now[0] = 14.0
    asr.submit(job(4, heard, dropped))  # full again: 2 goes
    assert dropped == ["1:queue full", "2:queue full"]
    now[0] = 16.0  # 3 (queued at 5) is now too old; 4 (queued at 14) is not
    workers.busy = False
    await until(lambda: workers.started == ["utterance 4"])
    assert dropped[-1] == "3:too old" and asr.stats.dropped_stale == 1
    await workers.release.put("go")
    await until(lambda: heard == ["utterance 4"])
    await asr.close()


@pytest.mark.asyncio
async def test_a_failed_recognition_costs_one_line_and_the_queue_goes_on() -> None:
    calls = []

    async def transcribe(audio: np.ndarray, lang: str | None) -> str:
        calls.append(int(audio[0]))
        if audio[0] == 1:
            raise RuntimeError("speech worker died")
        return "fine"

    asr = LiveAsr(transcribe, lambda: False, poll_s=0.01)
    asr.start()
    heard: list[str] = []
    dropped: list[str] = []
    asr.submit(job(1, heard, dropped))
    asr.submit(job(2, heard, dropped))
    await until(lambda: heard == ["fine"])
    assert dropped == ["1:failed"] and asr.stats.failed == 1 and asr.stats.transcribed == 1
    await asr.close()


@pytest.mark.asyncio
async def test_agent_lines_are_recognised_first_and_a_full_queue_drops_a_caller_line_first() -> None:
    workers = FakeWorkers()
    workers.busy = True
    asr = LiveAsr(workers.transcribe, lambda: workers.busy, max_pending=3, poll_s=0.01)
    asr.start()
    heard: list[str] = []
    dropped: list[str] = []
    for n, priority in ((1, 0), (2, 1), (3, 0), (4, 1)):  # caller, agent, caller, agent
        waiting = job(n, heard, dropped)
        waiting.priority = priority
        asr.submit(waiting)
    assert dropped == ["1:queue full"]  # the oldest caller line, though an agent line was older than 3
    workers.busy = False
    for _ in range(3):
        await workers.release.put("go")
    await until(lambda: len(heard) == 3)
    assert heard == ["utterance 2", "utterance 4", "utterance 3"]
    await asr.close()
