"""CPU per SRTP stream vs plain RTP, in one run: N RtpStream pairs on loopback (both ends in this process, paced by
the one media ticker, audio both ways), alternately plain and SRTP (AES_CM_128_HMAC_SHA1_80) for equal rounds.
Prints process CPU per stream (ms of CPU per second of media), the SRTP/RTP ratio, late ticks, packets sent (a
tick more than 2 periods late is skipped, not sent) and lost,
and libsrtp's own cost per packet (protect + unprotect).

    .venv/bin/python bench/srtp_cpu.py --pairs 50 --seconds 8 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import secrets
import sys
import time
from pathlib import Path

import numpy as np
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import BenchRecord  # noqa: E402
from voicebot.rtp.srtp import SrtpContext  # noqa: E402
from voicebot.rtp.stream import PortAllocator, RtpStream  # noqa: E402
from voicebot.rtp.ticker import get_ticker  # noqa: E402
from voicebot.sip.sdp import SrtpKeys  # noqa: E402

HOST = "127.0.0.1"
SUITE = "AES_CM_128_HMAC_SHA1_80"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(pairs: int, seconds: float, srtp: bool) -> dict[str, float]:
    """Run ``pairs`` connected stream pairs for ``seconds``; CPU and media figures for the window."""
    base = random.randrange(20000, 50000, 2)
    ports = PortAllocator(base, base + 4 * pairs + 200)
    streams: list[RtpStream] = []
    for _ in range(pairs):
        a = await RtpStream.open(HOST, ports)
        b = await RtpStream.open(HOST, ports)
        if srtp:
            ka, kb = secrets.token_bytes(30), secrets.token_bytes(30)
            a.apply_sdes(SrtpKeys(SUITE, 1, ka, kb))
            b.apply_sdes(SrtpKeys(SUITE, 1, kb, ka))
        a.set_remote(HOST, b.local_port)
        b.set_remote(HOST, a.local_port)
        streams += [a, b]
    chunk = (6000 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.int16)
    chunk.setflags(write=False)  # shared payload, as a cached prompt is
    for stream in streams:
        stream.on_audio(lambda frame: None)
        stream.play(chunk)
    await asyncio.sleep(1.0)  # warm-up: latching, jitter buffers filled
    ticker = get_ticker()
    ticker.take_window()
    received = sum(s.stats["packets_received"] for s in streams)
    sent = sum(s.stats["packets_sent"] for s in streams)
    cpu, wall = cpu_seconds(), time.monotonic()
    end = wall + seconds
    while time.monotonic() < end:
        for stream in streams:
            if not stream.playing:
                stream.play(chunk)
        await asyncio.sleep(0.2)
    cpu, wall = cpu_seconds() - cpu, time.monotonic() - wall
    window = ticker.take_window()
    received = sum(s.stats["packets_received"] for s in streams) - received
    sent = sum(s.stats["packets_sent"] for s in streams) - sent
    failed = sum(s.stats["srtp_auth_failed"] for s in streams)
    for stream in streams:
        await stream.close()
    expected = len(streams) * wall * 50
    return {"cpu_ms_per_stream_s": 1000 * cpu / (len(streams) * wall), "late_pct": window["late_pct"],
            "sent_pct": 100 * sent / expected, "lost_pct": max(0.0, 100 * (sent - received) / max(sent, 1)),
            "auth_failed": failed, "core_pct": 100 * cpu / wall, "max_lateness_ms": window["max_lateness_ms"]}


def libsrtp_cost(packets: int = 20000) -> float:
    """Microseconds of protect + unprotect for one 172-byte G.711 packet."""
    ka, kb = secrets.token_bytes(30), secrets.token_bytes(30)
    a, b = SrtpContext(SUITE, ka, kb), SrtpContext(SUITE, kb, ka)
    header = b"\x80\x00"
    start = time.perf_counter()
    for sequence in range(packets):
        packet = header + sequence.to_bytes(2, "big") + (sequence * 160).to_bytes(4, "big") + b"\x00\x00\x12\x34"
        b.unprotect(a.protect(packet + b"\xff" * 160))
    return 1e6 * (time.perf_counter() - start) / packets


async def run(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {"rtp": [], "srtp": []}
    for round_index in range(args.rounds):
        for kind in ("rtp", "srtp") if round_index % 2 == 0 else ("srtp", "rtp"):  # alternate: fair to load drift
            figures = await measure(args.pairs, args.seconds, kind == "srtp")
            results[kind].append(figures)
            print(f"round {round_index + 1} {kind:4}: {figures['cpu_ms_per_stream_s']:.3f} ms CPU per stream-second, "
                  f"{figures['core_pct']:.0f} % of a core, late ticks {figures['late_pct']:.2f} % (max "
                  f"{figures['max_lateness_ms']:.0f} ms), sent {figures['sent_pct']:.1f} % of 50/s, "
                  f"lost {figures['lost_pct']:.2f} %, auth failures {figures['auth_failed']:.0f}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=50, help="stream pairs (2 streams each)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per phase")
    parser.add_argument("--rounds", type=int, default=2, help="plain/SRTP phase pairs, alternating order")
    args = parser.parse_args()
    with BenchRecord("srtp_cpu") as record:
        print(f"{args.pairs} pairs = {2 * args.pairs} streams, {args.seconds:g} s per phase, {args.rounds} rounds; "
              f"{SUITE}")
        results = uvloop.run(run(args))
        per_packet = libsrtp_cost()
        rtp = float(np.median([r["cpu_ms_per_stream_s"] for r in results["rtp"]]))
        srtp = float(np.median([r["cpu_ms_per_stream_s"] for r in results["srtp"]]))
        late = {kind: max(r["late_pct"] for r in results[kind]) for kind in ("rtp", "srtp")}
        print(f"median CPU per stream: RTP {rtp:.3f} ms/s, SRTP {srtp:.3f} ms/s, ratio {srtp / rtp:.2f}")
        print(f"libsrtp protect + unprotect: {per_packet:.1f} µs per packet "
              f"({per_packet * 50 / 1000:.3f} ms per stream-second both ways)")
        record.data.update(results=results, per_packet_us=per_packet, rtp_ms=rtp, srtp_ms=srtp)
        record.row(f"CPU per media stream, SRTP ({SUITE}) vs plain RTP ({2 * args.pairs} G.711 streams both ways, "
                   "one run, alternating phases)",
                   f"SRTP {srtp:.2f} ms/s vs RTP {rtp:.2f} ms/s of CPU per stream: ratio **{srtp / rtp:.2f}**; "
                   f"libsrtp {per_packet:.1f} µs per packet; late ticks (the box's other load) RTP ≤ {late['rtp']:.0f} %,"
                   f" SRTP ≤ {late['srtp']:.0f} %")


if __name__ == "__main__":
    main()
