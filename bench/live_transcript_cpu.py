#!/usr/bin/env python3
"""CPU per transcribed bridged call: the live transcript (voicebot/handoff/live_transcript.py) of a scripted
bridged conversation, both legs, through a real speech worker.

The conversation alternates the caller (8 kHz, as a SIP leg relays it) and the agent (48 kHz, as a WebRTC leg
does), fixture utterances with pauses, about a minute of call. Frames are fed as the bridge's tap sees them (20 ms
each); utterances go through LiveAsr to the worker. Measured: the server process's CPU for voice activity detection,
segmentation and resampling (on the event loop) and the worker's CPU for recognition, each per minute of call.
The audio is fed faster than real time, so every utterance queues at once (agent lines first): the wait figures
printed are queueing under that burst, not a live call's latency (tests/web/test_live_transcript_browser.py
measures that: phrase end → supervisor alert).

    bench/live_transcript_cpu.py [--model tiny.en|base] [--window 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import BenchRecord  # noqa: E402
from voicebot.handoff.live_asr import LiveAsr  # noqa: E402
from voicebot.handoff.live_transcript import BridgedCall, LiveCall  # noqa: E402
from voicebot.speech.resample import resample  # noqa: E402
from voicebot.speech.workers import SpeechWorkerPool  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "audio_fixtures"
SCRIPT = [("caller", "en_refund_question"), ("agent", "en_agent_card_number"), ("caller", "en_long_talk"),
          ("agent", "en_yes"), ("caller", "en_balance"), ("agent", "en_account_digits"), ("caller", "en_no"),
          ("agent", "en_long_talk"), ("caller", "en_return_item"), ("agent", "en_agent")]
RATES = {"caller": 8000, "agent": 48000}
PAUSE_S = 1.5


def clip(name: str, rate: int) -> np.ndarray:
    audio, fixture_rate = soundfile.read(str(FIXTURES / f"{name}.wav"), dtype="int16")
    return audio if fixture_rate == rate else resample(audio, fixture_rate, rate)


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(model: str, window_s: float | None) -> dict[str, Any]:
    async with SpeechWorkerPool(1, asr_models=(model,), voices={}, asr_window_s=window_s) as pool:
        await pool.transcribe(np.zeros(16000, np.int16), language="en")  # warm
        worker = pool.worker_pids()[0]
        assert worker is not None

        async def transcribe(pcm: np.ndarray, lang: str | None) -> str:
            return (await pool.transcribe(pcm, language="en")).text

        asr = LiveAsr(transcribe, pool.saturated, max_pending=100, max_age_s=600)
        lines: list[dict[str, Any]] = []
        queued: list[float] = []
        latencies: list[float] = []

        def sink(entry: dict[str, Any]) -> None:
            if entry.get("live"):
                lines.append(entry)
                latencies.append(time.perf_counter() - queued[len(lines) - 1])

        live = LiveCall(BridgedCall("bench", "support", "a1", "en-US", "webrtc"), asr, sink)
        submit = asr.submit

        def timed_submit(job: Any) -> None:
            queued.append(time.perf_counter())
            submit(job)

        asr.submit = timed_submit  # type: ignore[method-assign]
        asr.start()
        call_s = 0.0
        main_cpu = 0.0
        worker_before = cpu_of(worker)
        for speaker, name in SCRIPT:
            side = "a" if speaker == "caller" else "b"
            other = "b" if side == "a" else "a"
            rate = RATES[speaker]
            audio = np.concatenate([clip(name, rate), np.zeros(int(rate * PAUSE_S), np.int16)])
            step, other_step = rate // 50, RATES["agent" if speaker == "caller" else "caller"] // 50
            silent = np.zeros(other_step, np.int16)
            started = time.process_time()
            for start in range(0, audio.size - step + 1, step):  # both legs tick; one speaks
                live.on_audio(side, audio[start:start + step], rate)
                live.on_audio(other, silent, other_step * 50)
            main_cpu += time.process_time() - started
            call_s += audio.size / rate
            await asyncio.sleep(0)
        deadline = time.monotonic() + 300
        while len(lines) < len(queued) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        worker_cpu = cpu_of(worker) - worker_before
        live.close()
        await asr.close()
    return {"call_s": call_s, "main_cpu_s": main_cpu, "worker_cpu_s": worker_cpu, "utterances": len(queued),
            "lines": lines, "latencies": latencies, "stats": asr.stats.as_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en", choices=["tiny.en", "base"])
    parser.add_argument("--window", type=float, default=None, help="Whisper English window, s (speech.asr_window_s)")
    args = parser.parse_args()
    with BenchRecord("live_transcript_cpu") as record:
        result = asyncio.run(run(args.model, args.window))
        minutes = result["call_s"] / 60
        for line in result["lines"]:
            print(f"  {line['who']:6} {line['text']}")
        main_per_min = result["main_cpu_s"] / minutes
        worker_per_min = result["worker_cpu_s"] / minutes
        print(f"{result['call_s']:.0f} s of bridged call, {result['utterances']} utterances, "
              f"{len(result['lines'])} lines; queue {result['stats']}")
        print(f"server process (VAD, segmentation, resampling): {main_per_min:.2f} CPU-s per call minute")
        print(f"speech worker ({args.model}): {worker_per_min:.2f} CPU-s per call minute")
        print(f"burst of {result['utterances']} utterances, queued → line: median {statistics.median(result['latencies']):.2f} s, "
              f"max {max(result['latencies']):.2f} s; load {os.getloadavg()[0]:.1f} (2 cores)")
        window = f", {args.window:g} s window" if args.window else ""
        record.row(f"Live transcript of a bridged call ({args.model}{window}): CPU per call minute",
                   f"{main_per_min + worker_per_min:.1f} CPU-s ({main_per_min:.2f} VAD + "
                   f"{worker_per_min:.1f} ASR)", command=" ".join(["bench/live_transcript_cpu.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
