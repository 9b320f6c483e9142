"""SIP call setups per second that `voicebot serve` answers with 0 failures.

sipp (UAC, bench/sipp/short_call.xml) places short calls — INVITE / 200 / ACK, hold --hold-ms while the server
plays its greeting over RTP, BYE / 200 — at each rate of --rates for --seconds, against one server on 127.0.0.1.
For each rate it prints: calls attempted, successful, failed, sipp retransmissions, INVITE→200 response time
p50/p95, the rate sipp actually offered, the server's CPU % (100 % = one core) and RSS, and its media ticker's
late ticks. The headline (README row, bench/results/sip_call_rate.json) is the highest rate that every rate up to
it passed cleanly — 0 failures, 0 retransmissions, sipp offering ≥ 95 % of the rate — with its p95 setup time
(INVITE sent → 200 OK received, at the caller), and the first rate that shows retransmissions.

    .venv/bin/python bench/sip_call_rate.py                       # rates 50,100,200,300,400 for 10 s each
    .venv/bin/python bench/sip_call_rate.py --rates 100,400 --seconds 5 --hold-ms 500
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sip_bench_common import (  # noqa: E402
    KEYPAD_DEMO, BenchServer, SippRun, bench_config, cpu_percent, git_revision, percentile, read_usage)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import BenchRecord  # noqa: E402

GOAL_SETUPS_PER_S = 200
MAX_RATE = 2000


@dataclass
class RateResult:
    rate: int
    offered: float
    counts: dict[str, int]
    p50_ms: float
    p95_ms: float
    cpu_pct: float
    sipp_cpu_pct: float
    rss_mb: float
    late_ticks: int
    ticks: int
    max_lateness_ms: float
    server_calls_ended: int
    errors: str

    @property
    def clean(self) -> bool:
        return (self.counts.get("failed", 1) == 0 and self.counts.get("created", 0) > 0
                and self.counts.get("successful") == self.counts.get("created"))

    @property
    def retransmissions(self) -> int:
        return self.counts.get("retransmissions", 0)

    @property
    def sustained(self) -> bool:
        """0 failures, 0 retransmissions, and sipp really offered the rate (a caller that fell behind hides load)."""
        return self.clean and self.retransmissions == 0 and self.offered >= 0.95 * self.rate


def sustained_rate(results: list[RateResult]) -> RateResult | None:
    """The highest rate such that it and every lower rate tried were sustained (see `RateResult.sustained`)."""
    best = None
    for result in sorted(results, key=lambda r: r.rate):
        if not result.sustained:
            break
        best = result
    return best


def first_retransmitting(results: list[RateResult]) -> RateResult | None:
    """The lowest rate at which the caller had to retransmit (a request or response was late or lost)."""
    return next((r for r in sorted(results, key=lambda r: r.rate) if r.retransmissions > 0), None)


def readme_figure(results: list[RateResult]) -> str:
    best, retrans = sustained_rate(results), first_retransmitting(results)
    if best is None:
        figure = f"none of {', '.join(str(r.rate) for r in results)}/s ran clean"
    else:
        at_least = "≥ " if best.rate == max(r.rate for r in results) else ""  # the top rate tried was clean
        figure = (f"**{at_least}{best.rate}/s**, p95 setup {best.p95_ms:.0f} ms (INVITE → 200 OK at the caller), "
                  f"{best.cpu_pct:.0f} % of a core")
    if retrans is not None:
        figure += (f"; first retransmissions at {retrans.rate}/s ({retrans.retransmissions}, "
                   f"p95 setup {retrans.p95_ms:.0f} ms)")
    else:
        figure += f"; no retransmissions up to {max(r.rate for r in results)}/s"
    failing = [r.rate for r in results if not r.clean]
    figure += f"; first failures at {min(failing)}/s" if failing else f"; 0 failures up to {max(r.rate for r in results)}/s"
    return figure


def parse_rates(text: str) -> list[int]:
    try:
        rates = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rates must be comma-separated integers, got {text!r}") from None
    if not rates or any(not 1 <= rate <= MAX_RATE for rate in rates):
        raise argparse.ArgumentTypeError(f"--rates must list rates between 1 and {MAX_RATE}, got {text!r}")
    return rates


def run_rate(server: BenchServer, rundir: Path, rate: int, seconds: float, hold_ms: int) -> RateResult:
    calls = max(1, int(rate * seconds))
    limit = max(50, int(rate * (hold_ms / 1000.0 + 0.5) * 2))  # twice the steady-state concurrency
    ended_before = len(server.messages("call ended"))
    ticker_before = _ticker(server)
    sipp_timeout = seconds + hold_ms / 1000.0 + 30
    before = read_usage(server.pid)
    sipp = SippRun.start(server, "short_call.xml", rundir,
                         ["-r", str(rate), "-m", str(calls), "-l", str(limit), "-d", str(hold_ms),
                          "-max_retrans", "5", "-timeout_error"], sipp_timeout)
    try:
        sipp_before = read_usage(sipp.proc.pid)
        sipp_last = sipp_before
        after = before
        deadline = time.monotonic() + sipp_timeout + 10
        while sipp.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.25)
            try:
                after = read_usage(server.pid)
                sipp_last = read_usage(sipp.proc.pid)
            except (FileNotFoundError, ProcessLookupError):
                break
        sipp.wait(max(1.0, deadline - time.monotonic()))
    finally:
        sipp.kill()
    server.wait_idle(timeout=15)
    ticker_after = _ticker(server)
    times = sipp.response_times_ms()
    return RateResult(
        rate=rate, offered=sipp.offered_rate(), counts=sipp.final_counts(), p50_ms=percentile(times, 50),
        p95_ms=percentile(times, 95), cpu_pct=cpu_percent(before, after),
        sipp_cpu_pct=cpu_percent(sipp_before, sipp_last), rss_mb=after.rss_kb / 1024,
        late_ticks=ticker_after.get("late_ticks", 0) - ticker_before.get("late_ticks", 0)
        + ticker_after.get("skipped_ticks", 0) - ticker_before.get("skipped_ticks", 0),
        ticks=ticker_after.get("ticks", 0) - ticker_before.get("ticks", 0),
        max_lateness_ms=ticker_after.get("max_lateness_ms", 0.0),
        server_calls_ended=len(server.messages("call ended")) - ended_before, errors=sipp.errors_excerpt(4))


def _ticker(server: BenchServer) -> dict[str, Any]:
    stats = server.wait_stats_after(time.time(), timeout=3.0)
    return dict(stats["ticker"]) if stats else {}


def print_header() -> None:
    print(f"{'rate/s':>6} {'offered/s':>9} {'attempted':>9} {'ok':>6} {'failed':>6} {'retrans':>7} "
          f"{'p50 ms':>7} {'p95 ms':>7} {'srv CPU%':>8} {'sipp CPU%':>9} {'RSS MB':>7} {'late ticks':>12}",
          flush=True)


def print_result(result: RateResult) -> None:
    c = result.counts
    late = f"{result.late_ticks}/{result.ticks}" if result.ticks else "-"
    print(f"{result.rate:>6} {result.offered:>9.1f} {c.get('created', 0):>9} {c.get('successful', 0):>6} "
          f"{c.get('failed', 0):>6} {c.get('retransmissions', 0):>7} {result.p50_ms:>7.1f} {result.p95_ms:>7.1f} "
          f"{result.cpu_pct:>8.1f} {result.sipp_cpu_pct:>9.1f} {result.rss_mb:>7.1f} {late:>12}", flush=True)
    if not result.clean and result.errors:
        print("       sipp errors: " + result.errors.replace("\n", "\n                    "), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=parse_rates, default=[50, 100, 200, 300, 400],
                        help="comma-separated call rates per second (default: 50,100,200,300,400)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of calls at each rate (default: 10)")
    parser.add_argument("--hold-ms", type=int, default=1000, help="call hold time in ms (default: 1000)")
    parser.add_argument("--dialplan", default=KEYPAD_DEMO,
                        help="dialplan answering the calls (default: keypad-demo, the SIP layer's DTMF flow; "
                             "'demo' runs the speech dialplan)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (sipp csv files, logs)")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 60:
        parser.error("--seconds must be between 1 and 60")
    if not 0 <= args.hold_ms <= 30000:
        parser.error("--hold-ms must be between 0 and 30000")

    with BenchRecord("sip_call_rate") as record:
        run(args, record)
    return 0


def run(args: argparse.Namespace, record: BenchRecord) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="voicebot-bench-rate-"))
    max_calls = min(1900, max(500, int(max(args.rates) * (args.hold_ms / 1000.0 + 1) * 3)))
    server = BenchServer.start(workdir, bench_config(max_calls=max_calls, dialplan=args.dialplan))
    results: list[RateResult] = []
    try:
        idle = read_usage(server.pid)
        print(f"voicebot {git_revision()} serve (dialplan {args.dialplan}) on 127.0.0.1:{server.port} "
              f"(pid {server.pid}, idle RSS {idle.rss_kb / 1024:.1f} MB); "
              f"short calls: INVITE/200/ACK, {args.hold_ms} ms hold with greeting playback, BYE; "
              f"{args.seconds:g} s per rate; run dir {workdir}", flush=True)
        print_header()
        for rate in args.rates:
            if not server.alive():
                print("server exited; stopping", flush=True)
                break
            result = run_rate(server, workdir / f"rate-{rate}", rate, args.seconds, args.hold_ms)
            results.append(result)
            print_result(result)
    finally:
        server.stop()
    best = max((r.rate for r in results if r.clean), default=0)
    print(f"highest rate with 0 failures: {best}/s")
    sustained, retrans = sustained_rate(results), first_retransmitting(results)
    sustained_per_s = sustained.rate if sustained else 0
    verdict = "meets" if sustained_per_s >= GOAL_SETUPS_PER_S else "MISSES"
    print(f"highest rate with every rate up to it clean (0 failures, 0 retransmissions, offered >= 95 %): "
          f"{sustained_per_s}/s" + (f", p95 setup {sustained.p95_ms:.0f} ms" if sustained else "")
          + f" — {verdict} the goal of >= {GOAL_SETUPS_PER_S} setups/s"
          + (f"; first retransmissions at {retrans.rate}/s" if retrans else "; no retransmissions"))
    record.data.update(hold_ms=args.hold_ms, seconds_per_rate=args.seconds, dialplan=args.dialplan,
                       rates=[asdict(r) for r in results],
                       sustained_rate=sustained_per_s,
                       first_retransmissions_rate=retrans.rate if retrans else None)
    if results:
        record.row(f"Call setups/s with 0 failures and 0 retransmissions (sipp short calls, {args.seconds:g} s "
                   f"per rate, dialplan {args.dialplan}; goal {GOAL_SETUPS_PER_S}/s)", readme_figure(results))
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
