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
