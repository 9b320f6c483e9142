"""Turn latency over SIP loopback with the real models, measured at the caller (issue 3 benchmark, issue 16 review).

    .venv/bin/python bench/turn_latency.py [--asr-model base|tiny.en] [--calls 4] [--zh-calls 2]
        [--concurrency 4,8,12,16] [--arrivals together,staggered]

Starts `voicebot serve` (dialplan demo) and places calls with raw SIP/RTP callers (bench/rtp_callers.py) that send
20 ms G.711 packets from the answer on and timestamp what they send and receive. Callers speak with human voices
from ../shared/datasets/human-speech and with Piper (bench/caller_scripts.py), every pause carrying line noise:
- English caller (6 turns): a free-form question the bot cannot match (full endpoint; it reprompts), "I'd like to
  check my balance please.", a 6-digit account number in an FSDD speaker's voice (150-450 ms between digits), "No.",
  a hesitant second try ("Um, it's", 0.7 s pause, the digits: full endpoint), "Yes, that's right.";
- Mandarin caller (3 turns): AISHELL-1 sentences of speaker S0252 (free-form speech the bot must hear out).
Each turn starts --gap (3.5) s after the previous one's speech ended (the first 2 s after the answer, over the
greeting).

Turn latency = arrival of the bot's first reply packet − sending of the caller's last voiced frame, both at the
caller (bench/turn_measure.py). A turn with no reply before the caller's next turn is a failure and is counted as
one; in the concurrency figure a failed turn counts as slower than any answered one. Where the time goes still
comes from the server's "call ended" records (endpointing silence, ASR after the endpoint, NLU, TTS + media).
Then N simultaneous English callers give the talking calls per core at p95 turn ≤ 1.5 s (failed turns counted as
over), twice: callers that all dial at once (the worst burst) and callers dialling at seeded random phases of one
turn period, as independent calls do. The run is kept in bench/results/turn_latency.json (README rows included).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.caller_scripts import (  # noqa: E402
    Script,
    build,
    english_caller,
    mandarin_caller,
    piper_voice,
)
from bench.results import BenchRecord  # noqa: E402
from bench.rtp_callers import CallPlan, run_calls  # noqa: E402
from bench.turn_measure import TurnResult, measure_turns, percentile  # noqa: E402
from voicebot.api.tokens import TokenStore  # noqa: E402
from tests.integration.support import ServerProcess, start_server, stop_server  # noqa: E402

LEAD_S = 2.0  # the caller starts while the greeting plays (barge-in)
GAP_S = 3.5  # from the end of one caller turn to the start of the next
TURN_GOAL_MS = 1500.0
VERBOSE = False
END_SILENCE_MS = {"greet": 700, "default": 800}  # demo.yaml: greet sets 700, asks use the 800 ms default


def speech_waits(server: ServerProcess, token: str) -> dict[str, tuple[int, float]]:
    """The server's speech job queue so far, from /metrics: {"asr urgent": (jobs, total wait s), ...}."""
    port = server.wait_for("api listening")[0]["port"]
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    waits: dict[str, tuple[int, float]] = {}
    pattern = r'voicebot_speech_queue_wait_seconds_(sum|count)\{job="(\w+)",rank="(\w+)"\} ([\d.e+-]+)'
    for what, kind, rank, number in re.findall(pattern, text):
        value = float(number)
        jobs, total = waits.get(f"{kind} {rank}", (0, 0.0))
        waits[f"{kind} {rank}"] = (int(value), total) if what == "count" else (jobs, value)
    dropped = re.search(r'voicebot_speech_jobs_dropped_total\{job="asr"\} (\d+)', text)
    waits["asr dropped"] = (int(dropped.group(1)) if dropped else 0, 0.0)
    return waits


def speech_cpu_s(server: ServerProcess) -> float:
    """CPU seconds used so far by the server's child processes (the speech workers), from /proc: the cost of the
    speech work itself, which other jobs on a shared box do not inflate as they do wall times."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == server.proc.pid:  # ppid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def report_waits(before: dict[str, tuple[int, float]], after: dict[str, tuple[int, float]], cpu_s: float,
                 turns: int) -> dict[str, object]:
    """Print and return the speech jobs' mean queue wait in one round (the server's own saturation figure) and the
    speech workers' CPU per caller turn."""
    figures: dict[str, object] = {"worker_cpu_s": round(cpu_s, 2), "worker_cpu_s_per_turn": round(cpu_s / max(1, turns), 3)}
    parts = []
    for key in sorted(after):
        if key == "asr dropped":
            continue
        jobs = after[key][0] - before.get(key, (0, 0.0))[0]
        total = after[key][1] - before.get(key, (0, 0.0))[1]
        if jobs:
            figures[key] = {"jobs": jobs, "mean_wait_ms": round(1000 * total / jobs, 1)}
            parts.append(f"{key} {jobs} jobs, mean {1000 * total / jobs:.0f} ms")
    dropped = after["asr dropped"][0] - before.get("asr dropped", (0, 0.0))[0]
    figures["asr_dropped"] = dropped
    print(f"  speech job queue (server /metrics): {'; '.join(parts) or 'no jobs'}; {dropped} speculative ASR jobs "
          f"dropped unrun; speech workers' CPU {cpu_s:.1f} s = {cpu_s / max(1, turns):.2f} s per caller turn",
          flush=True)
    return figures


def wait_records(server: ServerProcess, count: int, timeout: float = 30) -> list[dict]:
    """The 'call ended' records; after ``timeout`` whatever there is (a call the server did not end is reported)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = server.records("call ended")
        if len(records) >= count:
            return records
        time.sleep(0.1)
    records = server.records("call ended")
    print(f"  WARNING: {count - len(records)} call(s) hung up by the caller have no 'call ended' record "
          f"{timeout:.0f} s later (server kept them: see its log)")
    return records


def arrival_offsets(parallel: int, period_s: float, staggered: bool, seed: int = 7) -> list[float]:
    """When each caller dials, in seconds from the first: all at once, or at independent random phases of one
    turn period (seeded, sorted) as independent calls arrive."""
    if not staggered or parallel < 2:
        return [0.0] * parallel
    phases = np.random.default_rng(seed).uniform(0.0, period_s, parallel - 1)
    return [0.0, *sorted(float(x) for x in phases)]


def run_round(server: ServerProcess, scripts: list[Script], offsets: list[float]) -> tuple[list[TurnResult], list[dict]]:
    """Place one call per script (dialling at `offsets`), all at once; the turns as the callers measured them."""
    before = len(server.records("call ended"))
    plans = [CallPlan(audio=script.audio, duration_s=len(script.audio) / 8000 + 1.0, start_after_s=offset, seed=i)
             for i, (script, offset) in enumerate(zip(scripts, offsets))]
    traces = run_calls((server.host, server.port), plans, processes=1)
    records = wait_records(server, before + len(plans))[before:before + len(plans)]
    turns: list[TurnResult] = []
    for trace, script in zip(traces, scripts):
        call_turns = measure_turns(trace, script)
        turns += call_turns
        if not trace.ok:
            print(f"  call failed: {trace.failure}")
        if VERBOSE:
            print("  turns:", [(t.label, None if t.latency_ms is None else round(t.latency_ms),
                                "late reply " + str(round(t.late_reply_ms)) if t.late_reply_ms is not None else "")
                               for t in call_turns])
    if VERBOSE:
        for record in records:
            for entry in record.get("transcript") or []:
                if entry["who"] in ("bot", "caller"):
                    print(f"    {entry['who']}: {entry['text']!r} {entry.get('kind') or entry.get('intent') or ''}")
    return turns, records


def summarize(label: str, turns: list[TurnResult]) -> dict[str, float]:
    """Print p50/p95 of the answered turns and the failures; p95 with failures counted as slowest too."""
    answered = [t.latency_ms for t in turns if t.latency_ms is not None]
    failures = sum(1 for t in turns if t.latency_ms is None)
    with_failures = answered + [float("inf")] * failures
    p50, p95 = percentile(answered, 50), percentile(answered, 95)
    p95_all = percentile(with_failures, 95)
    full = [t.latency_ms for t in turns if t.full_endpoint and t.latency_ms is not None]
    complete = [t.latency_ms for t in turns if not t.full_endpoint and t.latency_ms is not None]
    late = [t.late_reply_ms for t in turns if t.late_reply_ms is not None]
    print(f"{label}: {len(turns)} turns, {failures} without a reply (failures; {len(late)} of them answered only "
          f"after the caller's next turn began{', median ' + format(statistics.median(late), '.0f') + ' ms' if late else ''}"
          f"); answered p50 {p50:.0f} ms  "
          f"p95 {p95:.0f} ms  max {max(answered, default=0):.0f} ms; complete answers p50 "
          f"{percentile(complete, 50):.0f} ms, full-endpoint turns p50 {percentile(full, 50):.0f} ms; "
          f"bot still talking at the caller's end: {sum(1 for t in turns if t.bot_was_talking)}", flush=True)
    return {"p50": p50, "p95": p95, "p95_with_failures": p95_all, "failures": failures, "turns": len(turns),
            "mean": statistics.mean(answered) if answered else float("nan"),
            "complete_p50": percentile(complete, 50), "full_endpoint_p50": percentile(full, 50)}


def breakdown(records: list[dict], mean_latency: float) -> None:
    timings = [t for r in records for t in r.get("turns") or []]
    if not timings:
        print("  no per-turn timings in the call records")
        return
    asr = statistics.mean(t["asr_ms"] for t in timings)
    nlu = statistics.mean(t["nlu_ms"] for t in timings)
    spec = sum(1 for t in timings if t.get("speculative_hit")) / len(timings)
    first = [e for r in records for e in r["transcript"] if e["who"] == "caller"]
    if all("early" in t for t in timings):  # the session records the silence that ended each turn
        endpoint = statistics.mean(t["endpoint_ms"] for t in timings)
        early = sum(1 for t in timings if t["early"]) / len(timings)
        decodes = statistics.mean(t.get("asr_decodes", 0) for t in timings)
        how = f"semantic early endpoint on {early:.0%} of turns, {decodes:.2f} ASR decodes per turn"
    else:
        endpoint = statistics.mean(END_SILENCE_MS["greet"] if i == 0 else END_SILENCE_MS["default"]
                                   for i in range(len(first))) if first else END_SILENCE_MS["default"]
        how = "dialplan end_silence_ms"
    rest = mean_latency - endpoint - asr - nlu
    replies = [t["tts_first_ms"] for t in timings if t.get("tts_first_ms")]
    reply = f", of which turn end → reply audio queued (interpreter + TTS) {statistics.mean(replies):.0f} ms" \
        if replies else ""
    print(f"  where the time goes (means): endpointing silence ~{endpoint:.0f} ms ({how}), "
          f"ASR after the endpoint {asr:.0f} ms (speculative hits {spec:.0%}), NLU {nlu:.1f} ms, "
          f"TTS + interpreter + media ≈ {rest:.0f} ms{reply} (mean turn {mean_latency:.0f} ms − the others)")
    kinds = [e.get("kind") or e.get("intent") for e in first]
    print(f"  caller turns as the bot understood them: {kinds}")


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--asr-model", choices=["base", "tiny.en"], default="base")
    parser.add_argument("--calls", type=int, default=4, help="sequential English calls (6 turns each) for p50/p95")
    parser.add_argument("--zh-calls", type=int, default=2, help="sequential Mandarin calls (3 AISHELL turns each)")
    parser.add_argument("--concurrency", default="4,8,12,16", help="simultaneous callers to try, comma-separated "
                        "('' skips the concurrency rounds)")
    parser.add_argument("--arrivals", default="together,staggered",
                        help="together: all callers dial at once and speak in the same 20 ms (the worst burst); "
                             "staggered: each dials at a random phase of one turn period (independent calls)")
    parser.add_argument("--workers", type=int, default=0, help="speech worker processes (0: one per core)")
    parser.add_argument("--asr-window", type=float, default=None,
                        help="speech.asr_window_s (English Whisper window; default: 10 s for base, 30 s for tiny.en)")
    parser.add_argument("--gap", type=float, default=GAP_S,
                        help="seconds from the end of a caller turn to the start of the next: how long the caller "
                             "waits for a reply before the turn counts as failed (default: %(default)s)")
    parser.add_argument("--verbose", action="store_true", help="print each call's transcript and turn latencies")
    args = parser.parse_args()
    if not 1.5 <= args.gap <= 30:
        parser.error("--gap must be between 1.5 and 30 s")
    if args.calls < 0 or args.zh_calls < 0 or args.calls + args.zh_calls == 0:
        parser.error("--calls and --zh-calls must be >= 0, together >= 1")
    arrivals_modes = [x.strip() for x in args.arrivals.split(",") if x.strip()]
    for mode in arrivals_modes:
        if mode not in ("together", "staggered"):
            parser.error(f"--arrivals: unknown mode {mode!r}")
    try:
        levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--concurrency must be comma-separated integers, got {args.concurrency!r}")
    global VERBOSE
    VERBOSE = args.verbose
    with BenchRecord("turn_latency") as record:
        run(args, arrivals_modes, levels, record)
    return 0


def run(args: argparse.Namespace, arrivals_modes: list[str], levels: list[int], record: BenchRecord) -> None:
    cores = os.cpu_count() or 1
    started = time.monotonic()
    say = piper_voice()
    english = [build(english_caller(say, seed), lead_s=LEAD_S, gap_s=args.gap, seed=seed) for seed in range(args.calls)]
    mandarin = [build(mandarin_caller(seed), lead_s=LEAD_S, gap_s=args.gap, seed=100 + seed)
                for seed in range(args.zh_calls)]
    print(f"caller scripts ready in {time.monotonic() - started:.0f} s: {len(english)} English calls "
          f"({', '.join(english[0].labels) if english else '-'}), {len(mandarin)} Mandarin calls (AISHELL)",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="turn-latency-") as tmp:
        workdir = Path(tmp)
        print(f"starting voicebot serve (demo dialplan, Whisper {args.asr_model}, "
              f"{args.workers or cores} speech workers, {cores} cores)...", flush=True)
        window = f", asr_window_s: {args.asr_window}" if args.asr_window else ""
        config = f"speech: {{workers: {args.workers}, asr_model: {args.asr_model}{window}}}"
        tokens = TokenStore.load(workdir / "tokens.json")
        token = tokens.create("admin")  # for /metrics: the server's speech queue waits
        tokens.save()
        server = start_server(workdir, config, dialplan="demo")
        try:
            single: dict[str, dict[str, float]] = {}
            queues: dict[str, dict[str, object]] = {}  # the server's speech job queue waits in each round
            all_turns: list[TurnResult] = []
            for language, scripts in (("English", english), ("Mandarin", mandarin)):
                if not scripts:
                    continue
                turns, records = [], []
                waits_before, cpu_before = speech_waits(server, token), speech_cpu_s(server)
                for script in scripts:
                    call_turns, call_records = run_round(server, [script], [0.0])
                    turns += call_turns
                    records += call_records
                figures = summarize(f"{language}, one call at a time ({len(scripts)} calls; load average "
                                    f"{load_average()})", turns)
                breakdown(records, figures["mean"])
                queues[language] = report_waits(waits_before, speech_waits(server, token),
                                                speech_cpu_s(server) - cpu_before, len(turns))
                single[language] = figures
                all_turns += turns
            overall = summarize("all single calls", all_turns)
            record.data.update(asr_model=args.asr_model, gap_s=args.gap, single=single, overall=overall,
                               single_speech_queue=queues)
            record.row(f"Turn latency at the caller (caller's last voiced frame sent → first reply packet received), "
                       f"Whisper {args.asr_model}, demo dialplan, human voices (FSDD digits, AISHELL Mandarin) + "
                       f"Piper, line noise in every pause, {overall['turns']} turns incl. free-form and hesitant "
                       f"ones", f"**p50 {overall['p50']:.0f} ms / p95 {overall['p95']:.0f} ms, "
                       f"{overall['failures']} of {overall['turns']} turns without a reply within {args.gap:g} s**; "
                       + "; ".join(f"{language} p50 {f['p50']:.0f} / p95 {f['p95']:.0f} ms ({f['failures']} failed)"
                                   for language, f in single.items())
                       + f"; complete answers p50 {overall['complete_p50']:.0f} ms, full-endpoint turns p50 "
                         f"{overall['full_endpoint_p50']:.0f} ms")
            concurrency: dict[str, dict[str, object]] = {}
            for arrivals in arrivals_modes if english else []:
                best, tried = 0, []
                for n in levels:
                    scripts = [english[i % len(english)] for i in range(n)]
                    period = (len(scripts[0].audio) / 8000 - LEAD_S) / len(scripts[0].labels)
                    offsets = arrival_offsets(n, period, arrivals == "staggered")
                    label = f"{n} simultaneous calls, {arrivals} (load average {load_average()})"
                    waits_before, cpu_before = speech_waits(server, token), speech_cpu_s(server)
                    turns, records = run_round(server, scripts, offsets)
                    figures = summarize(label, turns)
                    breakdown(records, figures["mean"])
                    queue = report_waits(waits_before, speech_waits(server, token), speech_cpu_s(server) - cpu_before,
                                         len(turns))
                    tried.append({"calls": n, **figures, "speech_queue": queue})
                    if figures["p95_with_failures"] <= TURN_GOAL_MS:
                        best = max(best, n)
                    else:
                        break
                print(f"concurrent talking calls ({arrivals}) at p95 turn <= {TURN_GOAL_MS:.0f} ms, failures counted: "
                      f"{best} ({best / cores:.1f} per core on {cores} cores)", flush=True)
                concurrency[arrivals] = {"best": best, "per_core": best / cores, "tried": tried}
            record.data["concurrency"] = concurrency
            if concurrency:
                record.row(f"Concurrent talking calls at p95 turn ≤ {TURN_GOAL_MS / 1000:g} s measured at the caller "
                           f"(failed turns count as over; English script above, Whisper {args.asr_model})",
                           "; ".join(f"{arrivals}: **{c['best']} calls = {c['per_core']:.1f} per core** ("
                                     + ", ".join(f"{t['calls']} calls p95 {t['p95']:.0f} ms, {t['failures']} failed"
                                                 for t in c["tried"]) + ")"
                                     for arrivals, c in concurrency.items()))
        finally:
            stop_server(server)
    print(f"benchmark time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
