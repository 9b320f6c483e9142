"""Concurrent SRTP calls (SDES, AES_CM_128_HMAC_SHA1_80) held by one `voicebot serve` process, ramping the count:
the highest count whose callers receive < 1 % late packets, and the server's CPU.

The bench starts `voicebot serve` (bench/voicebot_serve_with_stats.py, dialplan keypad-demo, media_encryption
optional). Each step places --steps' count of calls from raw SIP/RTP callers (bench/rtp_callers.py, several
processes of --calls-per-process): INVITE with RTP/SAVP and an a=crypto key, ramping at --ramp-rate calls/s; every
caller sends a 20 ms PCMU packet of line noise every 20 ms, SRTP-protected; the server sends its greeting then
silence, 50 packets/s per call, SRTP-protected. Once every call is up (+ --settle s) a window of --window s is
measured: server CPU (/proc; 100 % = one core), the media ticker's late ticks, and at the callers, for every packet
received in the window (arrival read by the caller's event loop, decrypted after the call):
- late: arrived more than 20 ms behind its slot; the slot is the packet's RTP timestamp placed by the smallest
  transit of it and the 49 packets before it (a receiver whose jitter buffer adapts within 1 s; a server stall
  that skips ticks makes the following second late);
- gaps: more than 40 ms after the previous packet (bench/queue_listening.py's "late", for comparison);
- lost: sequence numbers missing in the window; short: packets received below 50/s per call over the window (a
  stalled server skips ticks rather than bursting: those packets are never sent).
A step passes with every call answered, keyed with SRTP at both ends (the server's "call ended" line), no SRTP
authentication failure, late < 1 % and short < 1 %; the ramp stops at the first step that does not pass. The callers share the 2 cores with the server: the figure is a floor.

    .venv/bin/python bench/srtp_concurrent.py                          # 50..500 calls, 15 s windows (<= ~4 min)
    .venv/bin/python bench/srtp_concurrent.py --steps 4,8 --window 3   # smoke run
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sip_bench_common import BenchServer, bench_config, cpu_percent, load_average, read_usage  # noqa: E402

from bench.results import BenchRecord  # noqa: E402
from bench.rtp_callers import FRAME_S, RATE, SRTP_SUITE, CallPlan, CallTrace, run_calls  # noqa: E402

GOAL_LATE_PCT = 1.0
LATE_S = 0.020  # behind its slot by more than one packet time
GAP_S = 0.040
ADAPT_PACKETS = 50  # the slot follows the smallest transit over this many packets (1 s)
LEAD_S = 4.0  # caller processes start (spawn, imports) before the first call
SLACK_S = 4.0  # calls are held this much longer, so a late start of the callers still leaves a full window


def late_in_window(trace: CallTrace, start: float, end: float) -> dict[str, int]:
    """Packets received in [start, end) and how many of them were late, gapped, lost (see the module docstring)."""
    at, ts, seq = trace.received_at, trace.received_timestamp, trace.received_seq
    if len(at) == 0:
        return {"received": 0, "late": 0, "gaps": 0, "lost": 0}
    media_s = np.unwrap(ts.astype(np.float64), period=2.0 ** 32) / RATE
    transit = at - media_s
    padded = np.concatenate([np.full(ADAPT_PACKETS - 1, np.inf), transit])
    floor = np.lib.stride_tricks.sliding_window_view(padded, ADAPT_PACKETS).min(axis=1)
    inside = (at >= start) & (at < end)
    if not inside.any():
        return {"received": 0, "late": 0, "gaps": 0, "lost": 0}
    seq_inside = np.unwrap(seq[inside].astype(np.float64), period=65536)
    return {"received": int(inside.sum()),
            "late": int(((transit - floor)[inside] > LATE_S).sum()),
            "gaps": int((np.diff(at[inside]) > GAP_S).sum()),
            "lost": max(0, int(seq_inside.max() - seq_inside.min() + 1) - int(inside.sum()))}


def run_step(server: BenchServer, calls: int, srtp: bool, args: argparse.Namespace) -> dict[str, Any]:
    """Place ``calls`` calls (SRTP or plain), measure the window once all are up; the step's figures."""
    ramp_s = calls / args.ramp_rate
    hold_end = ramp_s + args.settle + args.window + SLACK_S  # every call hangs up together, after the window
    plans = [CallPlan(audio=np.zeros(0, np.int16), duration_s=hold_end - i / args.ramp_rate,
                      start_after_s=i / args.ramp_rate, seed=i, srtp=srtp) for i in range(calls)]
    processes = math.ceil(calls / args.calls_per_process)
    traces: list[CallTrace] = []
    errors: list[BaseException] = []

    def place() -> None:
        try:
            traces.extend(run_calls(("127.0.0.1", server.port), plans, processes=processes, lead_s=LEAD_S))
        except BaseException as exc:  # noqa: BLE001  # reported after the window
            errors.append(exc)

    callers = threading.Thread(target=place, name="callers", daemon=True)
    ended_before = len(server.messages("call ended"))
    start_at = time.monotonic() + LEAD_S  # run_calls' common start, to a millisecond
    callers.start()
    time.sleep(max(0.0, start_at + ramp_s + args.settle - time.monotonic()))
    while server.active_calls() < calls and time.monotonic() < start_at + ramp_s + SLACK_S and callers.is_alive():
        time.sleep(0.2)  # the callers started late (a loaded box): wait for every call, within the slack
    window_start = time.monotonic()
    server.reset_ticker_stats()
    before = read_usage(server.pid)
    time.sleep(max(0.0, window_start + args.window - time.monotonic()))
    after = read_usage(server.pid)
    ticker = (server.wait_stats_after(time.time()) or {}).get("ticker", {})
    load = load_average()
    callers.join(timeout=hold_end + 120)
    if errors:
        raise RuntimeError(f"the caller processes failed: {errors[0]!r}") from errors[0]
    if callers.is_alive():
        raise RuntimeError("the caller processes did not finish in time")
    server.wait_idle(30)
    window_end = window_start + args.window
    ended = server.messages("call ended")[ended_before:]
    counts = [late_in_window(t, window_start, window_end) for t in traces]
    received = sum(c["received"] for c in counts)
    failed = [t.failure for t in traces if not t.ok]
    up_late = sum(1 for t in traces if t.answered_at is not None and t.answered_at > window_start)
    window_s = after.at - before.at
    return {
        "calls": calls, "srtp": srtp, "failed": len(failed), "failures": sorted(set(failed))[:3],
        "answered_after_window_start": up_late,
        "invite_retransmissions": sum(t.invite_retransmissions for t in traces),
        "srtp_dropped": sum(t.srtp_dropped for t in traces),
        "server_srtp_calls": sum(1 for e in ended if e.get("srtp") == SRTP_SUITE), "server_ended_calls": len(ended),
        "received": received, "expected": round(calls * args.window / FRAME_S),
        "short_pct": max(0.0, 100.0 * (1 - received / (calls * args.window / FRAME_S))),
        "late_pct": 100.0 * sum(c["late"] for c in counts) / max(received, 1),
        "gaps_pct": 100.0 * sum(c["gaps"] for c in counts) / max(received, 1),
        "lost_pct": 100.0 * sum(c["lost"] for c in counts) / max(received + sum(c["lost"] for c in counts), 1),
        "server_cpu_pct": cpu_percent(before, after), "server_cpu_s": after.cpu_s - before.cpu_s,
        "window_s": window_s, "server_rss_mb": after.rss_kb / 1024,
        "late_ticks": int(ticker.get("late_ticks", 0)) + int(ticker.get("skipped_ticks", 0)),
        "ticks": int(ticker.get("ticks", 0)),
        "caller_lateness_ms": max((t.caller_max_lateness_ms for t in traces), default=0.0),
        "caller_processes": processes, "load": load,
    }


def passed(step: dict[str, Any]) -> bool:
    keyed = step["server_srtp_calls"] == (step["calls"] if step["srtp"] else 0)
    return (keyed and not step["failed"] and not step["srtp_dropped"] and not step["answered_after_window_start"]
            and step["late_pct"] < GOAL_LATE_PCT and step["short_pct"] < GOAL_LATE_PCT)


def describe(step: dict[str, Any]) -> str:
    kind = "SRTP" if step["srtp"] else "RTP "
    failures = f" {step['failures']}" if step["failures"] else ""
    return (f"{step['calls']:4d} {kind} calls: {step['failed']} failed{failures}, late {step['late_pct']:.2f} %, "
            f"gaps {step['gaps_pct']:.2f} %, lost {step['lost_pct']:.2f} % of {step['received']} packets received "
            f"(expected {step['expected']}: short {step['short_pct']:.2f} %), SRTP drops {step['srtp_dropped']}, "
            f"server says SRTP on {step['server_srtp_calls']}/{step['server_ended_calls']} calls; server CPU "
            f"{step['server_cpu_pct']:.0f} %, RSS {step['server_rss_mb']:.0f} MB, late ticks "
            f"{step['late_ticks']}/{step['ticks']}; callers ({step['caller_processes']} processes) up to "
            f"{step['caller_lateness_ms']:.0f} ms behind their pace; INVITE retrans {step['invite_retransmissions']}"
            f"{', some calls answered after the window began' if step['answered_after_window_start'] else ''}; "
            f"load {step['load']:.1f}")


def start_server(work: Path, max_calls: int) -> BenchServer:
    """`voicebot serve` on loopback answering plain and SRTP offers alike (media_encryption: optional)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 4 * max_calls + 256))
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # inherited by the server
    return BenchServer.start(work, bench_config(max_calls=max_calls) + "media_encryption: optional\n")


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--window", type=float, default=15.0, help="measured seconds with every call up")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after the last answer before the window")
    parser.add_argument("--ramp-rate", type=float, default=50.0, help="new calls per second (default 50)")
    parser.add_argument("--calls-per-process", type=int, default=100, help="calls per caller process")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")],
                        default=[50, 100, 200, 300, 400, 500], help="concurrent calls per step, ascending")
    add_call_arguments(parser)
    args = parser.parse_args(argv)
    if not all(1 <= n <= 1900 for n in args.steps) or args.steps != sorted(args.steps):
        parser.error("--steps: ascending counts between 1 and 1900 (the bench RTP port range holds 2000 calls)")
    if max(args.steps) / args.ramp_rate + args.settle + args.window + SLACK_S > 55:
        parser.error("the longest step must end before the server's 60 s digit timeout: lower --window or raise "
                     "--ramp-rate")
    with tempfile.TemporaryDirectory() as tmp, BenchRecord("srtp_concurrent") as record:
        server = start_server(Path(tmp), max(args.steps) + 50)
        steps: list[dict[str, Any]] = []
        try:
            print(f"voicebot serve on 127.0.0.1:{server.port}; {SRTP_SUITE} calls in steps {args.steps} at "
                  f"{args.ramp_rate:g}/s, window {args.window:g} s; goal late < {GOAL_LATE_PCT:g} %", flush=True)
            for calls in args.steps:
                step = run_step(server, calls, True, args)
                steps.append(step)
                print(describe(step), flush=True)
                if not passed(step):
                    break
        finally:
            server.stop()
        record.data.update(steps=steps, args=vars(args))
        good = [s for s in steps if passed(s)]
        best = good[-1] if good else None
        beyond = "" if passed(steps[-1]) else (
            f"; {steps[-1]['calls']} calls: late {steps[-1]['late_pct']:.1f} %, {steps[-1]['failed']} failed")
        if best is None:
            print(f"no step passed{beyond}")
            figure = f"none of the steps passed{beyond}"
        else:
            print(f"highest count with late < {GOAL_LATE_PCT:g} %: {best['calls']} SRTP calls, server CPU "
                  f"{best['server_cpu_pct']:.0f} % ({best['server_cpu_pct'] / best['calls']:.2f} % per call){beyond}")
            figure = (f"**{best['calls']}** calls (late {best['late_pct']:.2f} %, lost {best['lost_pct']:.2f} %), "
                      f"server {best['server_cpu_pct']:.0f} % of a core{beyond}")
        record.row(f"Concurrent SRTP calls ({SRTP_SUITE}, G.711 both ways) per process with late packets < 1 % at "
                   f"the callers (raw SIP/SRTP callers on the same cores, steps {','.join(map(str, args.steps))})",
                   figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
