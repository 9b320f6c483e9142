"""Concurrent calls with audio both ways held by one `voicebot serve` process, and how late its media runs.

sipp (UAC, bench/sipp/short_call.xml with -rtp_echo) ramps up to --calls calls at --ramp-rate calls/s and holds
each for --seconds. voicebot sends 50 G.711 packets/s per call (greeting, then silence while it waits for digits);
sipp echoes every packet back, so the server also receives 50 packets/s per call. While all calls are up the
benchmark samples the server's CPU and RSS and its media ticker's stats (a tick more than 5 ms behind its 20 ms
slot delays that tick's packet on every call, so late ticks / ticks is the share of late packets sent). When the
calls end it reads each call's RTP counters from the server's log ("call ended": rtp_sent, rtp_received, rtp_lost;
"bench call media": jitter_late, interarrival_jitter_ms) and prints a verdict against the goal
(≥ 400 concurrent calls with < 1 % late packets).

    .venv/bin/python bench/sip_concurrent_calls.py                  # 400 calls held 60 s
    .venv/bin/python bench/sip_concurrent_calls.py --calls 200 --seconds 30
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sip_bench_common import (  # noqa: E402
    KEYPAD_DEMO,
    RTP_PORT_END, RTP_PORT_START, BenchServer, SippRun, bench_config, cpu_percent, git_revision, load_average,
    read_usage, udp_drops_by_port)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import BenchRecord  # noqa: E402

GOAL_CALLS = 400
GOAL_LATE_PCT = 1.0
PACKETS_PER_S = 50
DIGIT_TIMEOUT_S = 60  # the server's maximum; it hangs up ~greeting + this after answering
MAX_HOLD_S = 55


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=GOAL_CALLS, help="concurrent calls (default: 400)")
    parser.add_argument("--seconds", type=float, default=50.0, help=f"hold time of each call, s (default: 50, "
                        f"at most {MAX_HOLD_S}: the server hangs up after its {DIGIT_TIMEOUT_S} s digit timeout)")
    parser.add_argument("--ramp-rate", type=int, default=50, help="new calls per second while ramping (default: 50)")
    parser.add_argument("--calls-per-sipp", type=int, default=50,
                        help="calls per sipp process (default: 50); sipp echoes all its calls' RTP on one socket "
                             "whose 208 KB receive buffer overflows beyond ~100 calls")
    parser.add_argument("--dialplan", default=KEYPAD_DEMO,
                        help="dialplan answering the calls (default: keypad-demo, the SIP layer's DTMF flow; "
                             "'demo' runs the speech dialplan)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (sipp csv files, logs)")
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 1900:
        parser.error("--calls must be between 1 and 1900 (the bench RTP port range holds 2000 calls)")
    if not 1 <= args.calls_per_sipp <= args.calls:
        parser.error("--calls-per-sipp must be between 1 and --calls")
    if not 1 <= args.ramp_rate <= 500:
        parser.error("--ramp-rate must be between 1 and 500 calls/s")
    ramp_s = args.calls / args.ramp_rate
    if not ramp_s + 5 <= args.seconds <= MAX_HOLD_S:
        parser.error(f"--seconds must be between ramp time + 5 s ({ramp_s + 5:g}) and {MAX_HOLD_S}")

    with BenchRecord("sip_concurrent_calls") as record:
        run(args, record)
    return 0


def run(args: argparse.Namespace, record: BenchRecord) -> None:
    ramp_s = args.calls / args.ramp_rate
    workdir = Path(tempfile.mkdtemp(prefix="voicebot-bench-concurrent-"))
    server = BenchServer.start(workdir, bench_config(max_calls=max(args.calls + 50, 100),
                                                      digit_timeout_s=DIGIT_TIMEOUT_S,
                                                      dialplan=args.dialplan))
    sipps: list[SippRun] = []
    try:
        idle = read_usage(server.pid)
        print(f"voicebot {git_revision()} serve (dialplan {args.dialplan}) on 127.0.0.1:{server.port} "
              f"(pid {server.pid}, idle RSS {idle.rss_kb / 1024:.1f} MB); "
              f"{args.calls} calls at {args.ramp_rate}/s, each held {args.seconds:g} s, RTP echoed by sipp; "
              f"run dir {workdir}", flush=True)
        hold_ms = int(args.seconds * 1000)
        sipp_timeout = ramp_s + args.seconds + 30
        instances = math.ceil(args.calls / args.calls_per_sipp)
        for index in range(instances):
            calls = args.calls // instances + (1 if index < args.calls % instances else 0)
            # each instance ramps at ramp_rate / instances: "ramp_rate calls per instances seconds"
            sipps.append(SippRun.start(server, "short_call.xml", workdir / f"sipp-{index}",
                                       ["-r", str(args.ramp_rate), "-rp", str(1000 * instances), "-m", str(calls),
                                        "-l", str(calls), "-d", str(hold_ms), "-rtp_echo", "-timeout_error"],
                                       sipp_timeout))
        started = time.monotonic()
        # ramp: wait (bounded) until every call is up
        up_deadline = started + ramp_s + 10
        while time.monotonic() < up_deadline and server.active_calls() < args.calls and _running(sipps):
            time.sleep(0.2)
        ramp_done = time.monotonic() - started
        up = server.active_calls()
        print(f"ramp: {up} calls up after {ramp_done:.1f} s", flush=True)

        # steady window: all calls up, until 3 s before the first call's hold ends
        window_s = max(1.0, args.seconds - ramp_done - 3.0)
        time.sleep(1.0)  # let the first full ticker interval start
        server.reset_ticker_stats()
        reset_ts = time.time()
        first = read_usage(server.pid)
        samples = [first]
        sipp_first = [read_usage(run.proc.pid) for run in sipps]
        active: list[int] = []
        window_end = time.monotonic() + window_s - 1.0
        while time.monotonic() < window_end and _running(sipps) and server.alive():
            time.sleep(1.0)
            samples.append(read_usage(server.pid))
            active.append(server.active_calls())
        sipp_last = [read_usage(run.proc.pid) if run.proc.poll() is None else usage
                     for run, usage in zip(sipps, sipp_first)]
        drops = udp_drops_by_port()
        steady_end_ts = time.time()
        last = samples[-1]
        load = load_average()
        ticker_stats = server.wait_stats_after(steady_end_ts) or {}
        ticker = ticker_stats.get("ticker", {})
        if _log_after(server, reset_ts) is None:
            print("warning: no ticker stats after the reset", flush=True)

        # calls end: sipp sends BYE for each, the server logs the counters
        deadline = time.monotonic() + sipp_timeout + 10
        for run in sipps:
            run.wait(max(1.0, deadline - time.monotonic()))
        server.wait_idle(timeout=20)
        ended = server.messages("call ended")
        media = {entry["call_id"]: entry for entry in server.messages("bench call media")}
        counts: dict[str, int] = {}
        for run in sipps:
            for key, value in run.final_counts().items():
                counts[key] = counts.get(key, 0) + value
    finally:
        for run in sipps:
            run.kill()
        server.stop()

    per_sample_cpu = [cpu_percent(a, b) for a, b in zip(samples, samples[1:])]
    calls_held = min(active) if active else 0
    cpu = cpu_percent(first, last)
    rss_mb = last.rss_kb / 1024
    rss_per_call_kb = (last.rss_kb - idle.rss_kb) / max(1, calls_held)
    ticks = int(ticker.get("ticks", 0))
    late = int(ticker.get("late_ticks", 0)) + int(ticker.get("skipped_ticks", 0))
    late_pct = 100.0 * late / (ticks + int(ticker.get("skipped_ticks", 0))) if ticks else float("nan")

    sent = sum(int(e.get("rtp_sent") or 0) for e in ended)
    received = sum(int(e.get("rtp_received") or 0) for e in ended)
    lost = sum(int(e.get("rtp_lost") or 0) for e in ended)
    expected = sum(float(e.get("duration_s") or 0) * PACKETS_PER_S for e in ended)
    jitter_late = sum(int(m.get("jitter_late") or 0) for m in media.values())
    jitter_ms = [float(m.get("interarrival_jitter_ms") or 0) for m in media.values()]

    print(f"sipp: {counts.get('created', 0)} calls, {counts.get('successful', 0)} successful, "
          f"{counts.get('failed', 0)} failed, {counts.get('retransmissions', 0)} retransmissions "
          f"({len(sipps)} sipp processes, together {sum(map(cpu_percent, sipp_first, sipp_last)):.0f} % CPU)")
    if counts.get("failed"):
        print("  sipp errors: " + sipps[0].errors_excerpt(4).replace("\n", "\n               "))
    print(f"steady window: {last.at - first.at:.0f} s with {calls_held}..{max(active, default=0)} calls up")
    print(f"server CPU: {cpu:.1f} % of one core (1 s samples {min(per_sample_cpu, default=0):.0f}.."
          f"{max(per_sample_cpu, default=0):.0f} %), {cpu / max(1, calls_held):.3f} % per call")
    print(f"machine: load average {load:.2f} on {os.cpu_count()} cores; server main thread had "
          f"{last.preempted - first.preempted} involuntary context switches in the window")
    print(f"server RSS: {rss_mb:.1f} MB (idle {idle.rss_kb / 1024:.1f} MB, peak {last.peak_rss_kb / 1024:.1f} MB), "
          f"{rss_per_call_kb:.0f} KB per call")
    print(f"media ticker (steady window): {ticks} ticks, {late} late > 5 ms ({late_pct:.2f} %), "
          f"skipped {ticker.get('skipped_ticks', 0)}, max lateness {ticker.get('max_lateness_ms', 0):.1f} ms, "
          f"tick work mean {ticker.get('mean_busy_ms', 0):.2f} ms / max {ticker.get('max_busy_ms', 0):.1f} ms")
    sent_pct = 100.0 * sent / expected if expected else 0.0
    print(f"RTP per server log ({len(ended)} calls ended): sent {sent} ({sent_pct:.2f} "
          f"% of duration x 50/s), received {received} ({100.0 * received / sent if sent else 0:.2f} % of sent, "
          f"echoed), lost {lost}, late for the jitter buffer {jitter_late}, "
          f"interarrival jitter median {statistics.median(jitter_ms) if jitter_ms else 0:.2f} ms / "
          f"max {max(jitter_ms, default=0):.2f} ms")
    sipp_drops = sum(drops.get(run.media_port, 0) for run in sipps)
    server_drops = sum(count for port, count in drops.items() if RTP_PORT_START <= port < RTP_PORT_END)
    print(f"kernel UDP receive-buffer drops at the end of the window: sipp echo sockets {sipp_drops}, "
          f"server RTP sockets {server_drops}")
    ok = calls_held >= GOAL_CALLS and late_pct < GOAL_LATE_PCT and not counts.get("failed")
    print(f"verdict: {'MEETS' if ok else 'MISSES'} the goal (>= {GOAL_CALLS} concurrent calls with < "
          f"{GOAL_LATE_PCT:g} % late packets): {calls_held} calls held, {late_pct:.2f} % late ticks, "
          f"{counts.get('failed', 0)} failed calls")
    record.data.update(calls=args.calls, calls_held=calls_held, hold_s=args.seconds, dialplan=args.dialplan,
                       counts=counts, load_average=load, server_cpu_pct=cpu, rss_per_call_kb=rss_per_call_kb,
                       ticks=ticks, late_ticks=late, late_pct=late_pct, ticker=ticker, rtp_sent=sent,
                       rtp_received=received, rtp_lost=lost, jitter_late=jitter_late,
                       udp_drops_sipp=sipp_drops, udp_drops_server=server_drops, meets_goal=ok)
    record.row(f"Concurrent calls, audio both ways, one process (dialplan {args.dialplan}, sipp echoing RTP; "
               f"goal {GOAL_CALLS} with < {GOAL_LATE_PCT:g} % late packets)",
               f"{calls_held} calls held, {counts.get('failed', 0)} failed, {late_pct:.1f} % late ticks "
               f"(max lateness {float(ticker.get('max_lateness_ms', 0)):.1f} ms), {lost} RTP lost, "
               f"{cpu:.0f} % of a core, ~{rss_per_call_kb:.0f} KB RSS/call (load average {load:.1f})")
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


def _running(sipps: list[SippRun]) -> bool:
    return all(run.proc.poll() is None for run in sipps)


def _log_after(server: BenchServer, moment_ts: float) -> dict[str, Any] | None:
    return server.wait_stats_after(moment_ts, timeout=0.1)


if __name__ == "__main__":
    sys.exit(main())
