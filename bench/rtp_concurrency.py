"""RTP media-path capacity: N full-duplex G.711 calls through RtpStream on loopback, under uvloop.

The server process (this one) opens N RtpStreams, all paced by the one global MediaTicker, each
playing a tone in 1 s chunks and consuming its incoming audio. A child process plays the N callers
with raw UDP sockets (one shared 20 ms schedule), so the figures for the server process are not
polluted by the load generator. Prints calls, packets each way, late ticks, max tick lateness,
loss, server CPU % and RSS per call.

    .venv/bin/python bench/rtp_concurrency.py --calls 400 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import struct
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import BenchRecord  # noqa: E402
from voicebot.rtp.g711 import ulaw_encode  # noqa: E402
from voicebot.rtp.stream import PortAllocator, RtpStream  # noqa: E402
from voicebot.rtp.ticker import get_ticker  # noqa: E402

HOST = "127.0.0.1"
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def rss_kb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_KB


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def involuntary_switches() -> int:
    """Times the kernel preempted this process (other load competing for the cores)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


def tone(frequency: float, seconds: float) -> np.ndarray:
    t = np.arange(int(8000 * seconds)) / 8000
    return (6000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


# ------------------------------------------------------------------ caller side (child process)
class _Counter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not 200 <= data[1] <= 204:  # RTCP may land here: port+1 of one caller is another caller
            self.received += 1


def callers_main(calls: int, conn: Connection, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    uvloop.run(_callers(calls, conn))


async def _callers(calls: int, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    endpoints = [await loop.create_datagram_endpoint(_Counter, local_addr=(HOST, 0)) for _ in range(calls)]
    transports = [t for t, _ in endpoints]
    counters = [p for _, p in endpoints]
    conn.send([t.get_extra_info("sockname")[1] for t in transports])
    server_ports: list[int] = await loop.run_in_executor(None, conn.recv)
    payload = ulaw_encode(tone(700, 0.02))
    header = struct.Struct("!BBHII")
    targets = [(HOST, port) for port in server_ports]
    ssrcs = [0x10000 + n for n in range(calls)]
    state = {"sent": 0, "tick": 0, "sending": True}
    start = loop.time()

    def tick() -> None:
        if not state["sending"]:
            return
        n = state["tick"]
        sequence, timestamp = n & 0xFFFF, (n * 160) & 0xFFFFFFFF
        for transport, target, ssrc in zip(transports, targets, ssrcs):
            transport.sendto(header.pack(0x80, 0, sequence, timestamp, ssrc) + payload, target)
        state["sent"] += calls
        state["tick"] = n + 1
        loop.call_at(start + (n + 1) * 0.02, tick)

    tick()
    await loop.run_in_executor(None, conn.recv)  # "stop sending"
    state["sending"] = False
    await asyncio.sleep(0.3)
    conn.send(state["sent"])
    await loop.run_in_executor(None, conn.recv)  # "server stopped; report what arrived"
    await asyncio.sleep(0.3)
    conn.send((sum(c.received for c in counters), cpu_seconds()))
    for transport in transports:
        transport.close()


# ------------------------------------------------------------------ server side (this process)
async def run(calls: int, seconds: float, pin: bool) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    parent, child = mp.Pipe()
    cpus = sorted(os.sched_getaffinity(0))
    caller_cpu = cpus[-1] if pin and len(cpus) > 1 else None
    if caller_cpu is not None:  # server and callers on different cores: no wake-up preemption ping-pong
        os.sched_setaffinity(0, {cpus[0]})
    process = mp.get_context("spawn").Process(target=callers_main, args=(calls, child, caller_cpu), daemon=True)
    process.start()
    caller_ports: list[int] = await loop.run_in_executor(None, parent.recv)
    base_rss = rss_kb()
    allocator = PortAllocator(30000, 30000 + 4 * calls + 200)
    streams = [await RtpStream.open(HOST, allocator) for _ in range(calls)]
    chunk = tone(440, 1.0)
    frames_heard = [0]

    def hear(frame: np.ndarray) -> None:
        frames_heard[0] += 1

    for stream, port in zip(streams, caller_ports):
        stream.set_remote(HOST, port)
        stream.on_audio(hear)
        stream.play(chunk)
        stream.on_playback_done(lambda s=stream: s.play(chunk))
    parent.send([s.local_port for s in streams])
    await asyncio.sleep(1.0)  # warm-up: latching, jitter buffers filling
    ticker = get_ticker()
    ticker.reset_stats()
    cpu0, wall0, switches0 = cpu_seconds(), time.perf_counter(), involuntary_switches()
    await asyncio.sleep(seconds)
    cpu1, wall1, switches1 = cpu_seconds(), time.perf_counter(), involuntary_switches()
    ticks = ticker.stats()
    rss_per_call = (rss_kb() - base_rss) / calls
    parent.send("stop")
    caller_sent: int = await loop.run_in_executor(None, parent.recv)
    server_received = sum(s.stats["packets_received"] for s in streams)
    jitter_lost = sum(s.stats["jitter_lost"] for s in streams)
    for stream in streams:
        await stream.close()
    server_sent = sum(s.stats["packets_sent"] for s in streams)
    parent.send("report")
    caller_received, caller_cpu = await loop.run_in_executor(None, parent.recv)
    process.join(5)
    return {
        "calls": calls,
        "seconds": seconds,
        "packets_sent_server": server_sent,
        "packets_received_server": server_received,
        "packets_sent_callers": caller_sent,
        "packets_received_callers": caller_received,
        "loss_in_pct": 100.0 * (1 - server_received / caller_sent) if caller_sent else 0.0,
        "loss_out_pct": 100.0 * (1 - caller_received / server_sent) if server_sent else 0.0,
        "jitter_buffer_lost": jitter_lost,
        "frames_delivered": frames_heard[0],
        "ticks": ticks["ticks"],
        "late_ticks_pct": 100.0 * ticks["late_ratio"],
        "max_tick_lateness_ms": ticks["max_lateness_ms"],
        "mean_tick_work_ms": ticks["mean_busy_ms"],
        "max_tick_work_ms": ticks["max_busy_ms"],
        "server_cpu_pct": 100.0 * (cpu1 - cpu0) / (wall1 - wall0),
        "server_rss_per_call_kb": rss_per_call,
        "server_preemptions": switches1 - switches0,
        "load_average_1min": os.getloadavg()[0],
        "caller_process_cpu_s": caller_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the server and the caller process to different cores")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * args.calls + 64
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))
    with BenchRecord("rtp_concurrency") as record:
        result = uvloop.run(run(args.calls, args.seconds, not args.no_pin))
        for key, value in result.items():
            print(f"{key:28s} {value:.2f}" if isinstance(value, float) else f"{key:28s} {value}")
        record.data.update(result)
        record.row(f"RTP media path alone ({args.seconds:g} s, raw UDP callers in another process)",
                   f"{result['calls']} full-duplex calls at {result['server_cpu_pct']:.0f} % of a core, "
                   f"{result['late_ticks_pct']:.1f} % late ticks (max lateness "
                   f"{result['max_tick_lateness_ms']:.1f} ms), loss in/out {result['loss_in_pct']:.2f} / "
                   f"{result['loss_out_pct']:.2f} %, ~{result['server_rss_per_call_kb']:.0f} KB RSS/call")


if __name__ == "__main__":
    main()
