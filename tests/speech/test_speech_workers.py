"""SpeechWorkerPool: engines in spawned processes, async API, crash isolation and replacement."""

import asyncio
import os
import signal

import numpy as np
import pytest

from voicebot.speech.resample import resample
from voicebot.speech.workers import EngineCrashed, SpeechWorkerPool


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_pool_round_trip_concurrency_and_crash_recovery():
    async with SpeechWorkerPool(size=2, asr_models=("tiny.en",)) as pool:
        pids = pool.worker_pids()
        assert len(set(pids)) == 2 and os.getpid() not in pids

        pcm, rate = await pool.synthesize("Please transfer me to billing.")
        assert pcm.dtype == np.int16 and rate == 22050 and pcm.size > rate
        speech16k = resample(pcm, rate, 16000)

        results = [await pool.transcribe(speech16k, language="en") for _ in range(2)]
        # Piper's synthesis is stochastic (noise_scale), so allow the usual tiny.en variants of "billing".
        assert all("transfer" in r.text.lower() and "bill" in r.text.lower() for r in results), results

        # A worker killed mid-job: the caller gets EngineCrashed, the worker is replaced.
        long_audio = np.tile(speech16k, 12)  # > 30 s: several decoder windows, ~1 s of work
        job = asyncio.create_task(pool.transcribe(long_audio, language="en"))
        await asyncio.sleep(0.3)
        os.kill(pids[0], signal.SIGKILL)
        with pytest.raises(EngineCrashed, match=f"pid {pids[0]}"):
            await job
        assert pool.crashes == 1

        await pool.wait_ready()
        new_pids = pool.worker_pids()
        assert new_pids[0] not in pids and new_pids[1] == pids[1]
        again = await pool.transcribe(speech16k, language="en")
        assert "bill" in again.text.lower(), again


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_unknown_engine_names_and_unstarted_pool_give_clear_errors():
    pool = SpeechWorkerPool(size=1, asr_models=("tiny.en",))
    with pytest.raises(RuntimeError, match="not started"):
        await pool.synthesize("hi")
    async with pool:
        with pytest.raises(ValueError, match="ASR engine 'base' is not loaded.*tiny.en"):
            await pool.transcribe(np.zeros(16000, np.int16), model="base")
        with pytest.raises(ValueError, match="TTS engine 'zh' is not loaded"):
            await pool.synthesize("你好", voice="zh")


def test_bad_pool_size():
    with pytest.raises(ValueError, match="size must be >= 1"):
        SpeechWorkerPool(size=0)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_tts_is_resampled_in_the_worker_and_shared_by_simultaneous_callers(tmp_path):
    from voicebot.speech.prompts import PromptCache
    from voicebot.speech.services import SpeechServices

    async with SpeechWorkerPool(size=1, asr_models=("tiny.en",)) as pool:
        pcm, rate = await pool.synthesize("You are number three in the queue.", rate=8000)
        assert rate == 8000 and pcm.dtype == np.int16 and pcm.size > 8000

        jobs: list[str] = []
        real = pool.synthesize

        async def counted(text: str, voice: str = "en", rate: int | None = None):  # type: ignore[no-untyped-def]
            jobs.append(text)
            return await real(text, voice, rate)

        pool.synthesize = counted  # type: ignore[method-assign]
        speech = SpeechServices(pool, PromptCache(tmp_path / "prompts"), asr_model="tiny.en")
        sentence = "You are number seven in the queue."
        results = await asyncio.gather(*(speech.synthesize(sentence, "en-US", 8000) for _ in range(20)))
        assert len(jobs) == 1  # twenty waiting callers, one synthesis
        assert all(r is results[0] for r in results) and not results[0].flags.writeable
        again = await speech.synthesize(sentence, "en-US", 8000)
        assert again is results[0] and len(jobs) == 1  # then from the in-memory LRU


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_close_does_not_wait_out_a_long_job_it_terminates_the_worker():
    import time

    pool = SpeechWorkerPool(size=1, asr_models=("tiny.en",))
    await pool.start()
    [pid] = pool.worker_pids()
    pcm, rate = await pool.synthesize("Please transfer me to billing.")
    minutes_of_speech = np.tile(resample(pcm, rate, 16000), 150)  # ~6 min of audio: many seconds of work
    job = asyncio.create_task(pool.transcribe(minutes_of_speech, language="en"))
    await asyncio.sleep(0)  # let the job be handed to the worker process
    started = time.monotonic()
    await pool.close()  # the job gets 5 s, then its worker is killed
    assert time.monotonic() - started < 10
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the worker process is gone
    with pytest.raises(EngineCrashed, match="the pool was closed"):
        await job


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_close_fails_queued_jobs_with_engine_crashed_not_a_bare_cancellation():
    pool = SpeechWorkerPool(size=1, asr_models=("tiny.en",))
    await pool.start()
    pcm, rate = await pool.synthesize("Please transfer me to billing.")
    long_audio = np.tile(resample(pcm, rate, 16000), 150)
    running = asyncio.create_task(pool.transcribe(long_audio, language="en"))
    queued = [asyncio.create_task(pool.synthesize("Hello.")) for _ in range(4)]  # behind the long job
    await asyncio.sleep(0)  # let every job reach the executor
    await pool.close()
    outcomes = await asyncio.gather(running, *queued, return_exceptions=True)
    assert all(isinstance(o, EngineCrashed) for o in outcomes), outcomes
    assert all("the pool was closed" in str(o) for o in outcomes)


@pytest.mark.asyncio
@pytest.mark.timeout(180)
async def test_busy_worker_takes_urgent_jobs_before_speculative_ones_and_drops_abandoned_ones():
    from voicebot.speech.scheduling import CURRENT_TICKET, Ticket

    async with SpeechWorkerPool(size=1, asr_models=("tiny.en",)) as pool:
        pcm, rate = await pool.synthesize("Please transfer me to billing.")
        speech16k = resample(pcm, rate, 16000)
        done: list[str] = []

        async def job(name: str, work, speculative: bool = False):  # type: ignore[no-untyped-def]
            if speculative:
                CURRENT_TICKET.set(Ticket(urgent=False))  # this task's own context, as Speculation does
            result = await work
            done.append(name)
            return result

        busy = asyncio.create_task(job("busy", pool.transcribe(np.tile(speech16k, 8), language="en")))
        await asyncio.sleep(0)
        assert pool.saturated()
        pause = asyncio.create_task(job("pause", pool.transcribe(speech16k, language="en"), speculative=True))
        overtaken = asyncio.create_task(job("overtaken", pool.transcribe(speech16k, language="en"),
                                            speculative=True))
        await asyncio.sleep(0)
        turn_end = asyncio.create_task(job("turn end", pool.transcribe(speech16k, language="en")))
        reply = asyncio.create_task(job("reply", pool.synthesize("Your balance is four dollars.")))
        await asyncio.sleep(0)
        overtaken.cancel()  # the caller spoke again before that pause's decode could start
        results = await asyncio.gather(busy, pause, turn_end, reply)
        assert done == ["busy", "turn end", "reply", "pause"]  # FIFO would have run the pause first
        assert "bill" in results[2].text.lower() and "bill" in results[1].text.lower()
        assert overtaken.cancelled()
        metrics = pool.queue_wait_metrics().splitlines()
        assert 'voicebot_speech_jobs_dropped_total{job="asr"} 1' in metrics
        assert 'voicebot_speech_queue_wait_seconds_count{job="asr",rank="speculative"} 1' in metrics
        urgent_waited = next(float(line.split()[-1]) for line in metrics
                             if line.startswith('voicebot_speech_queue_wait_seconds_sum{job="asr",rank="urgent"'))
        assert urgent_waited > 0.1  # the turn end waited for the busy job: saturation shows
        assert "voicebot_speech_queue_length 0" in metrics
