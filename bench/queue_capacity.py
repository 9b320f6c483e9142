"""Queue capacity: N callers waiting in one `voicebot serve` agent queue, measured by what the callers hear.

Callers (bench/rtp_callers.py: raw SIP over UDP on loopback, spread over several caller processes) ramp up to
--calls at --ramp-rate calls/s into the demo dialplan. Like a real phone, every caller sends a 20 ms G.711 packet
every 20 ms for the whole call (line noise: a phone line is never digitally silent) and 2 s after the answer keys 0
(RFC 4733), which the demo routes to the "support" queue. No agent is logged in, so every caller waits, hearing
generated hold music and a position/wait announcement every --announce-every seconds.

What counts is what each caller *receives* from entering the queue (its first hold-music packet) to hanging up:
announcements heard (runs of speech — level above the noise and energy above 1 kHz, which the hold melody lacks —
at least 0.6 s long, told apart by 0.4 s pauses) against the announcements due in that time, packets received
against 50/s, packets arriving more than 20 ms late (interarrival > 40 ms), gaps (no packet for >= 60 ms) and the
longest gap, and silences >= 1 s in the audio. The callers' own pacing is reported too (how far a caller process
fell behind its 20 ms schedule): a late caller process makes arrivals look late. The server's CPU and RSS (and its
speech workers'), its media ticker's late ticks and "caller queued" log come from the server side. Verdict against
the goal: >= 500 waiting callers, 0 failed calls, < 1 % of packets late at the callers.

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
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sip_bench_common import (  # noqa: E402
    REPO, BenchServer, ProcUsage, bench_config, cpu_percent, git_revision, load_average, read_usage)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.queue_listening import heard_in_queue  # noqa: E402
from bench.results import BenchRecord  # noqa: E402
from bench.rtp_callers import CallPlan, CallTrace, run_calls  # noqa: E402

GOAL_CALLERS = 500
GOAL_LATE_PCT = 1.0
PACKETS_PER_S = 50
QUEUE = "support"  # dialplans/demo.yaml: global dtmf "0" -> to_agent -> enqueue support
KEY_AFTER_ANSWER_S = 2.0  # each caller keys 0 this long after the answer


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
    parser.add_argument("--calls-per-process", "--calls-per-sipp", dest="calls_per_process", type=int, default=125,
                        help="callers per caller process (default: 125; --calls-per-sipp is the old name)")
    parser.add_argument("--announce-every", type=float, default=20.0,
                        help="queues.announce_every_s: position/wait announcement period, s (default: 20, min 5)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (server log)")
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 1900:
        parser.error("--calls must be between 1 and 1900 (the bench RTP port range holds 2000 calls)")
    if not 1 <= args.calls_per_process <= args.calls:
        parser.error("--calls-per-process must be between 1 and --calls")
    if not 1 <= args.ramp_rate <= 200:
        parser.error("--ramp-rate must be between 1 and 200 calls/s")
    if not 5 <= args.wait <= 600:
        parser.error("--wait must be between 5 and 600 s")
    if not 5 <= args.announce_every <= 600:
        parser.error("--announce-every must be between 5 and 600 s (the server's limits)")
    with BenchRecord("queue_capacity") as record:
        run(args, record)
    return 0


def run(args: argparse.Namespace, record: BenchRecord) -> None:
    ramp_s = args.calls / args.ramp_rate
    # each call lasts: ramp (so the first caller is still there when the last one arrives) + key 0 + window + margin
    hold_s = ramp_s + KEY_AFTER_ANSWER_S + args.wait + 8.0
    workdir = Path(tempfile.mkdtemp(prefix="voicebot-bench-queue-"))
    started_load = time.monotonic()
    server = BenchServer.start(workdir, queue_capacity_config(workdir, callers=args.calls,
                                                              announce_every_s=args.announce_every), timeout=240)
    samples: list[ProcUsage] = []
    worker_first: list[ProcUsage] = []
    worker_last: list[ProcUsage] = []
    active: list[int] = []
    queued_series: list[int] = []
    ticker: dict[str, Any] = {}
    load = 0.0
    window_queued = 0
    traces: list[CallTrace] = []
    caller_error: list[Exception] = []
    processes = math.ceil(args.calls / args.calls_per_process)
    plans = [CallPlan(audio=np.zeros(0, np.int16), duration_s=hold_s, dtmf=((KEY_AFTER_ANSWER_S, "0"),),
                      start_after_s=index / args.ramp_rate, seed=index) for index in range(args.calls)]

    def place_calls() -> None:
        try:
            traces.extend(run_calls(("127.0.0.1", server.port), plans, processes=processes, lead_s=3.0))
        except Exception as exc:  # noqa: BLE001  # reported below; the main thread measures on and stops the server
            caller_error.append(exc)

    callers = threading.Thread(target=place_calls, name="callers", daemon=True)
    try:
        idle = read_usage(server.pid)
        workers = descendants(server.pid)
        worker_idle_kb = sum(u.rss_kb for u in usage_of(workers))
        print(f"voicebot {git_revision()} serve (dialplan demo, queue {QUEUE}, no agent logged in) on "
              f"127.0.0.1:{server.port} (pid {server.pid}, up in {time.monotonic() - started_load:.0f} s, idle RSS "
              f"{idle.rss_kb / 1024:.1f} MB + {len(workers)} speech worker process(es) {worker_idle_kb / 1024:.0f} MB); "
              f"{args.calls} callers at {args.ramp_rate}/s from {processes} caller process(es) send RTP all along, "
              f"key 0 and wait {hold_s:.0f} s each, announcements every {args.announce_every:g} s; run dir {workdir}",
              flush=True)
        callers.start()
        started = time.monotonic()
        # ramp: wait (bounded) until every caller is queued
        up_deadline = started + 3.0 + ramp_s + KEY_AFTER_ANSWER_S + 30
        while (time.monotonic() < up_deadline and len(server.messages("caller queued")) < args.calls
               and callers.is_alive() and server.alive()):
            time.sleep(0.5)
        ramp_done = time.monotonic() - started
        print(f"ramp: {server.active_calls()} calls up, {len(server.messages('caller queued'))} callers queued "
              f"after {ramp_done:.1f} s", flush=True)

        # steady window: everyone waiting, until 4 s before the first caller hangs up
        window_s = max(3.0, min(args.wait, 3.0 + hold_s + KEY_AFTER_ANSWER_S - ramp_done - 4.0))
        time.sleep(1.0)
        server.reset_ticker_stats()
        first = read_usage(server.pid)
        samples.append(first)
        workers = descendants(server.pid)
        worker_first = usage_of(workers)
        window_end = time.monotonic() + window_s
        while time.monotonic() < window_end and callers.is_alive() and server.alive():
            time.sleep(1.0)
            samples.append(read_usage(server.pid))
            active.append(server.active_calls())
            queued_series.append(len(server.messages("caller queued")))
        worker_last = usage_of(workers)
        steady_end_ts = time.time()
        load = load_average()
        window_queued = min(min(active, default=0), min(queued_series, default=0))  # up and in the queue
        ticker = (server.wait_stats_after(steady_end_ts) or {}).get("ticker", {})
        callers.join(timeout=hold_s + ramp_s + 120)
        server.wait_idle(timeout=30)
    finally:
        alive_at_end = server.alive()
        server.stop()
    if caller_error:
        raise RuntimeError(f"the caller processes failed: {caller_error[0]!r}") from caller_error[0]
    if callers.is_alive():
        raise RuntimeError("the caller processes did not finish in time")

    queued = server.messages("caller queued")
    ended = server.messages("call ended")
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

    failed = [t for t in traces if not t.ok or t.ended_by != "caller"]
    heard = [h for h in (heard_in_queue(t) for t in traces if t.ok) if h is not None]
    never_held = sum(1 for t in traces if t.ok) - len(heard)
    packets = sum(h.packets for h in heard)
    late_packets = sum(h.late_packets for h in heard)
    late_packet_pct = 100.0 * late_packets / packets if packets else math.nan
    announcements = [h.announcements for h in heard]
    due = [int(h.queued_s // args.announce_every) for h in heard]
    longest_gap = max((h.longest_gap_ms for h in heard), default=0.0)
    gaps = sum(h.gaps for h in heard)
    silences = sum(h.silences for h in heard)
    longest_silence = max((h.longest_silence_s for h in heard), default=0.0)
    caller_lateness = max((t.caller_max_lateness_ms for t in traces), default=0.0)
    received_pct = 100.0 * packets / sum(h.packets_expected for h in heard) if heard else 0.0

    print(f"calls: {len(plans)} attempted, {len(plans) - len(failed)} ok, {len(failed)} failed "
          f"({processes} caller processes; INVITE retransmissions {sum(t.invite_retransmissions for t in traces)})")
    for trace in failed[:3]:
        print(f"  failed call: {trace.failure or 'hung up by the server (ended_by ' + trace.ended_by + ')'}")
    print(f"queue: {len(queued)} callers queued (server log 'caller queued'), max position "
          f"{max((int(e.get('position') or 0) for e in queued), default=0)}; {len(ended)} calls ended")
    print(f"steady window: {wall:.0f} s with {window_queued}..{max(active, default=0)} calls up "
          f"(callers queued during it {min(queued_series, default=0)}..{max(queued_series, default=0)})")
    print(f"what the callers received while queued ({len(heard)} callers heard hold music, {never_held} never did; "
          f"median {statistics.median([h.queued_s for h in heard]) if heard else 0:.0f} s in the queue): "
          f"{received_pct:.1f} % of 50 packets/s, {late_packets}/{packets} packets > 20 ms late "
          f"({late_packet_pct:.2f} %), {gaps} gaps >= 60 ms on {sum(1 for h in heard if h.gaps)} callers, "
          f"longest gap {longest_gap:.0f} ms; {silences} silences >= 1 s, longest {longest_silence:.1f} s")
    print(f"announcements heard per caller: min {min(announcements, default=0)} / median "
          f"{statistics.median(announcements) if announcements else 0:g} / max {max(announcements, default=0)} "
          f"(due every {args.announce_every:g} s: median {statistics.median(due) if due else 0:g}); callers who heard "
          f"fewer than due: {sum(1 for a, d in zip(announcements, due) if a < d)}")
    print(f"caller processes' own pacing: at most {caller_lateness:.0f} ms behind their 20 ms schedule "
          f"(arrival times are read by these processes: their lateness shows up as late packets too)")
    print(f"server CPU: {cpu:.1f} % of one core (1 s samples {min(per_sample_cpu, default=0):.0f}.."
          f"{max(per_sample_cpu, default=0):.0f} %), {cpu / waiting:.3f} % per waiting call; speech workers "
          f"{workers_cpu:.1f} % (announcements)")
    print(f"server RSS: {last.rss_kb / 1024:.1f} MB (idle {idle.rss_kb / 1024:.1f} MB, peak "
          f"{last.peak_rss_kb / 1024:.1f} MB), {(last.rss_kb - idle.rss_kb) / waiting:.0f} KB per waiting call; "
          f"speech workers {workers_rss_mb:.0f} MB")
    print(f"machine: load average {load:.2f} on {os.cpu_count()} cores; server main thread had "
          f"{last.preempted - first.preempted} involuntary context switches in the window")
    print(f"server media ticker (steady window): {ticks} ticks, {late} late > 5 ms ({late_pct:.2f} %), skipped "
          f"{skipped}, max lateness {ticker.get('max_lateness_ms', 0):.1f} ms, tick work mean "
          f"{ticker.get('mean_busy_ms', 0):.2f} ms / max {ticker.get('max_busy_ms', 0):.1f} ms")
    transcript_announcements = [_announcements(e.get("transcript") or []) for e in ended
                                if e.get("call_id") in {q.get("call_id") for q in queued}]
    print(f"announcements in the server's call transcripts: median "
          f"{statistics.median(transcript_announcements) if transcript_announcements else 0:g} per caller")
    if not alive_at_end:
        print(f"SERVER EXITED (code {server.proc.returncode}); last log lines:")
        print("  " + "\n  ".join(server.other_lines[-20:]))
    if refused or errors:
        print(f"server problems: {len(refused)} queue refusals, {len(errors)} error lines; first: "
              + "; ".join((refused + errors)[:3]))
    ok = (window_queued >= GOAL_CALLERS and len(queued) >= GOAL_CALLERS and not failed
          and late_packet_pct < GOAL_LATE_PCT)
    print(f"verdict: {'MEETS' if ok else 'MISSES'} the goal (>= {GOAL_CALLERS} waiting callers, 0 failed calls, "
          f"< {GOAL_LATE_PCT:g} % of packets late at the callers): {window_queued} callers waiting together, "
          f"{len(queued)} queued, {len(failed)} failed, {late_packet_pct:.2f} % late packets")
    record.data.update(
        calls=args.calls, waiting_together=window_queued, queued=len(queued), failed=len(failed),
        heard_hold_music=len(heard), received_pct=received_pct, late_packets=late_packets, packets=packets,
        late_packet_pct=late_packet_pct, gaps=gaps, longest_gap_ms=longest_gap, silences=silences,
        longest_silence_s=longest_silence, announcements=announcements, announcements_due=due,
        caller_max_lateness_ms=caller_lateness, server_cpu_pct=cpu, workers_cpu_pct=workers_cpu,
        server_rss_per_call_kb=(last.rss_kb - idle.rss_kb) / waiting, ticker=ticker, server_late_tick_pct=late_pct,
        load_average=load, meets_goal=ok)
    record.row(f"Callers waiting in queue, each sending RTP all along, measured at the callers (goal "
               f"{GOAL_CALLERS}; announcements every {args.announce_every:g} s)",
               f"**{window_queued} waiting together, {len(failed)} failed calls, {late_packet_pct:.2f} % of packets "
               f"> 20 ms late** (goal < {GOAL_LATE_PCT:g} %); {gaps} gaps ≥ 60 ms, longest {longest_gap:.0f} ms; "
               f"{received_pct:.1f} % of 50 packets/s received; announcements heard per caller "
               f"{min(announcements, default=0)}–{max(announcements, default=0)} (median due "
               f"{statistics.median(due) if due else 0:g}); server {cpu:.0f} % of a core + speech workers "
               f"{workers_cpu:.0f} % (load {load:.1f})")
    if args.keep:
        import json

        with (workdir / "server.log.jsonl").open("w") as handle:
            handle.writelines(json.dumps(entry) + "\n" for entry in server.records)
            handle.writelines(json.dumps({"raw": line}) + "\n" for line in server.other_lines)
        print(f"run dir kept: {workdir} (server log in server.log.jsonl)")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def _announcements(transcript: list[dict[str, Any]]) -> int:
    """Bot sentences spoken after the transcript's "queued in ..." entry (position/wait announcements)."""
    queued_at = next((i for i, e in enumerate(transcript) if str(e.get("text", "")).startswith("queued in")), None)
    if queued_at is None:
        return 0
    return sum(1 for e in transcript[queued_at + 1:] if e.get("who") == "bot")



if __name__ == "__main__":
    sys.exit(main())
