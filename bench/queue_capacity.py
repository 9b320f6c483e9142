"""Queue capacity: N callers waiting in one `voicebot serve` agent queue with hold music and announcements.

sipp (bench/sipp/queue_wait.xml, several processes) ramps up to --calls callers at --ramp-rate calls/s into the demo
dialplan; 2 s after answer each caller keys 0 (RFC 4733), which the demo routes to the "support" queue. No agent
is logged in, so every caller waits, hearing generated hold music and a position/wait announcement every
--announce-every seconds. Once all callers are up the benchmark measures a steady window (--wait seconds): the
server's CPU and RSS (and its speech workers'), and its media ticker (a tick more than 5 ms behind its 20 ms slot
delays that tick's packet on every call, so late ticks / ticks is the share of late packets). Then the callers hang
up and it prints calls attempted/ok/failed, callers queued (server log "caller queued"), CPU and memory per waiting
call, late ticks %, RTP sent per call vs 50 packets/s, and a verdict against the goal (>= 500 waiting callers,
0 failed calls, < 1 % late packets).

The benchmark uses its own queues file (a copy of sip_config/queues.yaml whose "support" queue admits
--calls callers and never overflows or times out) so the demo's max_size does not cap the run.

    .venv/bin/python bench/queue_capacity.py                  # 500 callers, all waiting together 40 s
    .venv/bin/python bench/queue_capacity.py --calls 100 --wait 30
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sip_bench_common import (  # noqa: E402
    REPO, BenchServer, ProcUsage, SippRun, bench_config, cpu_percent, git_revision, load_average, read_usage)

GOAL_CALLERS = 500
GOAL_LATE_PCT = 1.0
PACKETS_PER_S = 50
QUEUE = "support"  # dialplans/demo.yaml: global dtmf "0" -> to_agent -> enqueue support
KEY_AFTER_ANSWER_S = 2.5  # queue_wait.xml: 2 s pause, then the DTMF pcap (~0.3 s)


def queue_capacity_config(workdir: Path, *, callers: int, announce_every_s: float) -> str:
    """The bench server config: demo dialplan, one tiny.en speech worker, a "support" queue sized for ``callers``."""
    queues = yaml.safe_load((REPO / "sip_config" / "queues.yaml").read_text())
    for queue in queues["queues"]:
        if queue["name"] == QUEUE:
            queue["max_size"] = callers + 50
            queue.pop("overflow", None)
            queue.pop("max_wait_s", None)
            queue.pop("business_hours", None)
    queues_file = workdir / "queues.yaml"
    queues_file.write_text(yaml.safe_dump(queues, sort_keys=False))
    agents_file = REPO / "sip_config" / "agents.yaml"  # agents start logged out: nobody answers
    return bench_config(max_calls=max(callers + 50, 100), dialplan="demo") + (
        "speech: {workers: 1, asr_model: tiny.en}\n"
        f"queues: {{agents_file: {agents_file}, queues_file: {queues_file}, announce_every_s: {announce_every_s:g}}}\n"
    )


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (speech workers and their helpers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def usage_of(pids: list[int]) -> list[ProcUsage]:
    usages = []
    for pid in pids:
        try:
            usages.append(read_usage(pid))
        except OSError:
            continue
    return usages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=GOAL_CALLERS, help="callers waiting together (default: 500)")
    parser.add_argument("--wait", type=float, default=40.0,
                        help="steady window with every caller waiting, s (default: 40)")
    parser.add_argument("--ramp-rate", type=int, default=25, help="new calls per second while ramping (default: 25)")
    parser.add_argument("--calls-per-sipp", type=int, default=50, help="calls per sipp process (default: 50)")
    parser.add_argument("--announce-every", type=float, default=20.0,
                        help="queues.announce_every_s: position/wait announcement period, s (default: 20, min 5)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (sipp csv files, logs)")
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 1900:
        parser.error("--calls must be between 1 and 1900 (the bench RTP port range holds 2000 calls)")
    if not 1 <= args.calls_per_sipp <= args.calls:
        parser.error("--calls-per-sipp must be between 1 and --calls")
    if not 1 <= args.ramp_rate <= 200:
        parser.error("--ramp-rate must be between 1 and 200 calls/s")
    if not 5 <= args.wait <= 600:
        parser.error("--wait must be between 5 and 600 s")
    if not 5 <= args.announce_every <= 600:
        parser.error("--announce-every must be between 5 and 600 s (the server's limits)")

    ramp_s = args.calls / args.ramp_rate
    # each call lasts: ramp (so the first caller is still there when the last one arrives) + key 0 + window + margin
    hold_s = ramp_s + KEY_AFTER_ANSWER_S + args.wait + 8.0
    workdir = Path(tempfile.mkdtemp(prefix="voicebot-bench-queue-"))
    started_load = time.monotonic()
    server = BenchServer.start(workdir, queue_capacity_config(workdir, callers=args.calls,
                                                              announce_every_s=args.announce_every), timeout=240)
    sipps: list[SippRun] = []
    samples: list[ProcUsage] = []
    worker_first: list[ProcUsage] = []
    worker_last: list[ProcUsage] = []
    active: list[int] = []
    queued_series: list[int] = []
    ticker: dict[str, Any] = {}
    counts: dict[str, int] = {}
    load = 0.0
    window_queued = 0
    try:
        idle = read_usage(server.pid)
        workers = descendants(server.pid)
        worker_idle_kb = sum(u.rss_kb for u in usage_of(workers))
        print(f"voicebot {git_revision()} serve (dialplan demo, queue {QUEUE}, no agent logged in) on "
              f"127.0.0.1:{server.port} (pid {server.pid}, up in {time.monotonic() - started_load:.0f} s, idle RSS "
              f"{idle.rss_kb / 1024:.1f} MB + {len(workers)} speech worker process(es) {worker_idle_kb / 1024:.0f} MB); "
              f"{args.calls} callers at {args.ramp_rate}/s key 0 and wait {hold_s:.0f} s each, announcements every "
              f"{args.announce_every:g} s; run dir {workdir}", flush=True)
        sipp_timeout = ramp_s + hold_s + 40
        instances = math.ceil(args.calls / args.calls_per_sipp)
        for index in range(instances):
            calls = args.calls // instances + (1 if index < args.calls % instances else 0)
            sipps.append(SippRun.start(server, "queue_wait.xml", workdir / f"sipp-{index}",
                                       ["-r", str(args.ramp_rate), "-rp", str(1000 * instances), "-m", str(calls),
                                        "-l", str(calls), "-d", str(int(hold_s * 1000)), "-timeout_error"],
                                       sipp_timeout))
        started = time.monotonic()
        # ramp: wait (bounded) until every caller is queued
        up_deadline = started + ramp_s + KEY_AFTER_ANSWER_S + 30
        while (time.monotonic() < up_deadline and len(server.messages("caller queued")) < args.calls
               and _running(sipps) and server.alive()):
            time.sleep(0.5)
        ramp_done = time.monotonic() - started
        print(f"ramp: {server.active_calls()} calls up, {len(server.messages('caller queued'))} callers queued "
              f"after {ramp_done:.1f} s", flush=True)

        # steady window: everyone waiting, until 4 s before the first caller hangs up
        window_s = max(3.0, min(args.wait, hold_s + KEY_AFTER_ANSWER_S - ramp_done - 4.0))
        time.sleep(1.0)
        server.reset_ticker_stats()
        first = read_usage(server.pid)
        samples.append(first)
        workers = descendants(server.pid)
        worker_first = usage_of(workers)
        window_end = time.monotonic() + window_s
        while time.monotonic() < window_end and _running(sipps) and server.alive():
            time.sleep(1.0)
            samples.append(read_usage(server.pid))
            active.append(server.active_calls())
            queued_series.append(len(server.messages("caller queued")))
        worker_last = usage_of(workers)
        steady_end_ts = time.time()
        load = load_average()
        window_queued = min(min(active, default=0), min(queued_series, default=0))  # up and in the queue
        ticker = (server.wait_stats_after(steady_end_ts) or {}).get("ticker", {})

        deadline = time.monotonic() + sipp_timeout + 10
        for run in sipps:
            run.wait(max(1.0, deadline - time.monotonic()))
        server.wait_idle(timeout=30)
        for run in sipps:
            for key, value in run.final_counts().items():
                counts[key] = counts.get(key, 0) + value
    finally:
        for run in sipps:
            run.kill()
        alive_at_end = server.alive()
        server.stop()

    queued = server.messages("caller queued")
    ended = server.messages("call ended")
    joined_ids = {entry.get("call_id") for entry in queued}
    refused = [line for line in server.other_lines if "QueueFull" in line or "queue" in line and "full" in line]
    errors = [line for line in server.other_lines if "Traceback" in line or "ERROR" in line]
    errors += [str(e.get("msg")) for e in server.records if e.get("level") in ("ERROR", "CRITICAL")]

    last = samples[-1] if samples else idle
    first = samples[0] if samples else idle
    per_sample_cpu = [cpu_percent(a, b) for a, b in zip(samples, samples[1:])]
    cpu = cpu_percent(first, last)
    wall = last.at - first.at
    workers_cpu = (100.0 * (sum(u.cpu_s for u in worker_last) - sum(u.cpu_s for u in worker_first)) / wall
                   if wall > 0 else 0.0)
    workers_rss_mb = sum(u.rss_kb for u in worker_last) / 1024
    waiting = max(1, window_queued)
    ticks = int(ticker.get("ticks", 0))
    skipped = int(ticker.get("skipped_ticks", 0))
    late = int(ticker.get("late_ticks", 0)) + skipped
    late_pct = 100.0 * late / (ticks + skipped) if ticks else math.nan

    waited = [e for e in ended if e.get("call_id") in joined_ids]
    sent = sum(int(e.get("rtp_sent") or 0) for e in waited)
    expected = sum(float(e.get("duration_s") or 0) * PACKETS_PER_S for e in waited)
    per_call_pct = [100.0 * int(e.get("rtp_sent") or 0) / (float(e["duration_s"]) * PACKETS_PER_S)
                    for e in waited if float(e.get("duration_s") or 0) > 0]
    durations = [float(e.get("duration_s") or 0) for e in waited]
    announcements = [_announcements(e.get("transcript") or []) for e in waited]

    print(f"calls: {counts.get('created', 0)} attempted, {counts.get('successful', 0)} ok, "
          f"{counts.get('failed', 0)} failed, {counts.get('retransmissions', 0)} retransmissions "
          f"({len(sipps)} sipp processes)")
    if counts.get("failed"):
        for run in sipps:
            excerpt = run.errors_excerpt(4)
            if excerpt:
                print("  sipp errors: " + excerpt.replace("\n", "\n               "))
                break
    print(f"queue: {len(queued)} callers queued (server log 'caller queued'), max position "
          f"{max((int(e.get('position') or 0) for e in queued), default=0)}; {len(ended)} calls ended")
    print(f"steady window: {wall:.0f} s with {window_queued}..{max(active, default=0)} calls up "
          f"(callers queued during it {min(queued_series, default=0)}..{max(queued_series, default=0)})")
    print(f"server CPU: {cpu:.1f} % of one core (1 s samples {min(per_sample_cpu, default=0):.0f}.."
          f"{max(per_sample_cpu, default=0):.0f} %), {cpu / waiting:.3f} % per waiting call; speech workers "
          f"{workers_cpu:.1f} % (announcements)")
    print(f"server RSS: {last.rss_kb / 1024:.1f} MB (idle {idle.rss_kb / 1024:.1f} MB, peak "
          f"{last.peak_rss_kb / 1024:.1f} MB), {(last.rss_kb - idle.rss_kb) / waiting:.0f} KB per waiting call; "
          f"speech workers {workers_rss_mb:.0f} MB")
    print(f"machine: load average {load:.2f} on {os.cpu_count()} cores; server main thread had "
          f"{last.preempted - first.preempted} involuntary context switches in the window")
    print(f"media ticker (steady window): {ticks} ticks, {late} late > 5 ms ({late_pct:.2f} %), skipped {skipped}, "
          f"max lateness {ticker.get('max_lateness_ms', 0):.1f} ms, tick work mean "
          f"{ticker.get('mean_busy_ms', 0):.2f} ms / max {ticker.get('max_busy_ms', 0):.1f} ms")
    print(f"RTP sent by the server to queued callers ({len(waited)} calls, median {statistics.median(durations) if durations else 0:.1f} s): "
          f"{sent} packets = {100.0 * sent / expected if expected else 0:.2f} % of duration x 50/s "
          f"(per call min {min(per_call_pct, default=0):.1f} %, median "
          f"{statistics.median(per_call_pct) if per_call_pct else 0:.1f} %), "
          f"{sent / max(1, len(waited)):.0f} per call")
    print(f"announcements heard while queued (call transcripts): {sum(announcements)} in all, per call min "
          f"{min(announcements, default=0)} / median {statistics.median(announcements) if announcements else 0:g} / "
          f"max {max(announcements, default=0)}")
    if not alive_at_end:
        print(f"SERVER EXITED (code {server.proc.returncode}); last log lines:")
        print("  " + "\n  ".join(server.other_lines[-20:]))
    if refused or errors:
        print(f"server problems: {len(refused)} queue refusals, {len(errors)} error lines; first: "
              + "; ".join((refused + errors)[:3]))
    ok = (window_queued >= GOAL_CALLERS and len(queued) >= GOAL_CALLERS and not counts.get("failed")
          and counts.get("successful", 0) == counts.get("created", -1) and late_pct < GOAL_LATE_PCT)
    print(f"verdict: {'MEETS' if ok else 'MISSES'} the goal (>= {GOAL_CALLERS} waiting callers, 0 failed calls, "
          f"< {GOAL_LATE_PCT:g} % late packets): {window_queued} callers waiting together, {len(queued)} queued, "
          f"{counts.get('failed', 0)} failed, {late_pct:.2f} % late ticks")
    if args.keep:
        import json

        with (workdir / "server.log.jsonl").open("w") as handle:
            handle.writelines(json.dumps(entry) + "\n" for entry in server.records)
            handle.writelines(json.dumps({"raw": line}) + "\n" for line in server.other_lines)
        print(f"run dir kept: {workdir} (server log in server.log.jsonl)")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _announcements(transcript: list[dict[str, Any]]) -> int:
    """Bot sentences spoken after the transcript's "queued in ..." entry (position/wait announcements)."""
    queued_at = next((i for i, e in enumerate(transcript) if str(e.get("text", "")).startswith("queued in")), None)
    if queued_at is None:
        return 0
    return sum(1 for e in transcript[queued_at + 1:] if e.get("who") == "bot")


def _running(sipps: list[SippRun]) -> bool:
    return all(run.proc.poll() is None for run in sipps)


if __name__ == "__main__":
    sys.exit(main())
