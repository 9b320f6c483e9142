"""Kamailio in front of two voicebot nodes sharing one redis-server, on loopback: calls/s, failures, per-node split.

    .venv/bin/python bench/kamailio_spread.py [--calls 200] [--rate 20] [--hold-ms 300] [--drain-after-s 4]

sipp places keypad-demo calls (INVITE, two INFO digits, voicebot's BYE, all through the proxy) at --rate calls/s.
With --drain-after-s, node B gets SIGTERM that many seconds into the run (0 = never): the figures then show how the
survivor took over. Every process runs on 127.0.0.1 and is stopped at the end. The run is kept in
bench/results/kamailio_spread.json (kamailio_spread_drain.json with --drain-after-s), README row included.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import BenchRecord  # noqa: E402
from tests.deploy.kamailio_support import (  # noqa: E402
    Node,
    RedisServer,
    sipp_command,
    start_kamailio,
    start_node,
    stop_kamailio,
    stop_node,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200, help="calls to place (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=20, help="calls per second offered (default: %(default)s)")
    parser.add_argument("--hold-ms", type=int, default=300, help="pause before the caller keys digits")
    parser.add_argument("--limit", type=int, default=100, help="most simultaneous calls (default: %(default)s)")
    parser.add_argument("--drain-after-s", type=float, default=0, help="SIGTERM node B this far into the run")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.rate <= 0 or args.limit < 1 or args.hold_ms < 0 or args.drain_after_s < 0:
        parser.error("--calls, --rate and --limit must be positive, --hold-ms and --drain-after-s not negative")
    return args


def outcomes(node: Node) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in node.calls_ended():
        counts[record["outcome"]] = counts.get(record["outcome"], 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with BenchRecord("kamailio_spread_drain" if args.drain_after_s else "kamailio_spread") as record:
        return run(args, record)


def run(args: argparse.Namespace, record: BenchRecord) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="kamailio_spread_"))
    (workdir / "redis").mkdir()
    redis = RedisServer(workdir / "redis")
    redis.start()
    namespace = "bench" + uuid.uuid4().hex[:8]
    nodes: list[Node] = []
    kamailio = None
    try:
        for name, rtp_start in (("node-a", 61000), ("node-b", 63000)):
            nodes.append(start_node(workdir / name, name, redis_url=redis.url, namespace=namespace,
                                    rtp_start=rtp_start, rtp_size=2000))
        kamailio = start_kamailio(workdir / "kamailio", nodes, pike_density=max(1000, int(args.rate * 20)))
        timeout_s = int(args.calls / args.rate + args.hold_ms / 1000 + 60)
        command = sipp_command(kamailio, workdir, calls=args.calls, rate=args.rate, hold_ms=args.hold_ms,
                               limit=args.limit, timeout_s=timeout_s)
        started = time.monotonic()
        sipp = subprocess.Popen(command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        drained_at = None
        if args.drain_after_s:
            try:
                sipp.wait(args.drain_after_s)
            except subprocess.TimeoutExpired:
                nodes[1].server.proc.send_signal(signal.SIGTERM)
                drained_at = time.monotonic() - started
        stdout, _ = sipp.communicate(timeout=timeout_s + 30)
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 15
        while sum(len(node.calls_ended()) for node in nodes) < args.calls and time.monotonic() < deadline:
            time.sleep(0.1)
        ended = {node.name: len(node.calls_ended()) for node in nodes}
        completed = sum(outcomes(node).get("completed", 0) for node in nodes)
        failed_line = next((line for line in stdout.splitlines() if line.strip().startswith("Failed call")), "")
        sipp_failed = int(failed_line.split("|")[2].split()[0]) if failed_line.count("|") >= 2 else -1
        print(f"calls placed: {args.calls} at {args.rate:g}/s offered, hold {args.hold_ms} ms, "
              f"limit {args.limit} simultaneous")
        print(f"wall time: {elapsed:.2f} s  throughput: {args.calls / elapsed:.2f} calls/s completed end to end")
        print(f"sipp exit code: {sipp.returncode}  sipp failed calls: {sipp_failed}")
        print(f"voicebot call records: {sum(ended.values())}  completed: {completed}  "
              f"lost: {args.calls - sum(ended.values())}")
        for node in nodes:
            share = 100 * ended[node.name] / max(1, sum(ended.values()))
            print(f"  {node.name}: {ended[node.name]} calls ({share:.0f}%)  outcomes {outcomes(node)}")
        dispatched = kamailio.dispatched()
        print(f"kamailio INVITE dispatches: {dict(dispatched)}  failovers: {len(kamailio.grep('(failover)'))}")
        if drained_at is not None:
            node_b = f"sip:127.0.0.1:{nodes[1].server.port}"
            print(f"node-b SIGTERM at {drained_at:.1f} s; taken out by probe: "
                  f"{bool(kamailio.grep(f'edge: node {node_b} down'))}, by INVITE 503 + failover: "
                  f"{len(kamailio.grep(f'edge: node {node_b} failed INVITE'))}")
        lost = args.calls - sum(ended.values())
        record.data.update(calls=args.calls, rate=args.rate, hold_ms=args.hold_ms, wall_s=elapsed,
                           completed_per_s=args.calls / elapsed, sipp_failed=sipp_failed, completed=completed,
                           lost=lost, calls_per_node=ended, drained_at_s=drained_at)
        figure = f"{args.calls / elapsed:.1f} calls/s completed, {sipp_failed} failed, {lost} lost"
        what = f"Kamailio + 2 nodes + Redis, {args.calls} calls at {args.rate:g}/s"
        if drained_at is not None:
            what += f", node B drained (SIGTERM) {drained_at:.0f} s in"
        else:
            figure += ", nodes took " + " / ".join(f"{ended[node.name]}" for node in nodes) + " calls"
        record.row(what, figure)
        return 0 if sipp.returncode == 0 and completed == args.calls else 1
    finally:
        if kamailio is not None:
            stop_kamailio(kamailio)
        for node in nodes:
            stop_node(node)
        redis.stop()


if __name__ == "__main__":
    sys.exit(main())
