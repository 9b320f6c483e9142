"""Server CPU per SRTP stream vs plain RTP, in one run against one `voicebot serve`: N plain calls, then N SRTP
calls (SDES, AES_CM_128_HMAC_SHA1_80), same N, same callers; the ratio.

Each phase is one step of bench/srtp_concurrent.py (raw SIP/RTP callers from bench/rtp_callers.py, a 20 ms PCMU
packet each way every 20 ms, the measured window starting once every call is up): the server's CPU seconds (/proc,
user + system) in the window / (calls × window seconds) = CPU seconds per stream-second, one stream being a call's
RTP both ways (50 packets/s sent, 50 received). The server's idle CPU over a window before the first phase is
printed and subtracted ("net"). --rounds 2 runs plain, SRTP, SRTP, plain (ABBA: fair to a drift in the box's other
load); each kind's figure is the mean of its phases. Unlike bench/srtp_cpu.py (RtpStream pairs inside one
process), this is the whole server: SIP, dialplan, ticker, jitter buffers and libsrtp.

    .venv/bin/python bench/srtp_call_cpu.py                       # 200 calls, 20 s windows, ABBA (~3 min)
    .venv/bin/python bench/srtp_call_cpu.py --calls 4 --window 3 --rounds 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sip_bench_common import read_usage  # noqa: E402
from srtp_concurrent import SLACK_S, add_call_arguments, describe, run_step, start_server  # noqa: E402

from bench.results import BenchRecord  # noqa: E402
from bench.rtp_callers import SRTP_SUITE  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="concurrent calls in every phase (default 200)")
    parser.add_argument("--rounds", type=int, default=2, help="1: plain then SRTP; 2: plain, SRTP, SRTP, plain")
    add_call_arguments(parser)
    parser.set_defaults(window=20.0)
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 1900 or args.rounds not in (1, 2):
        parser.error("--calls between 1 and 1900, --rounds 1 or 2")
    if args.calls / args.ramp_rate + args.settle + args.window + SLACK_S > 55:
        parser.error("a phase must end before the server's 60 s digit timeout: lower --window or --calls")
    order = [False, True] if args.rounds == 1 else [False, True, True, False]
    with tempfile.TemporaryDirectory() as tmp, BenchRecord("srtp_call_cpu") as record:
        server = start_server(Path(tmp), args.calls + 50)
        phases: list[dict[str, Any]] = []
        try:
            time.sleep(2.0)
            first = read_usage(server.pid)
            time.sleep(args.window / 2)
            last = read_usage(server.pid)
            idle_cpu_per_s = (last.cpu_s - first.cpu_s) / (last.at - first.at)
            print(f"voicebot serve on 127.0.0.1:{server.port}; {args.calls} calls per phase, window {args.window:g} s;"
                  f" order {' '.join('SRTP' if s else 'RTP' for s in order)}; idle server CPU "
                  f"{100 * idle_cpu_per_s:.1f} % of a core", flush=True)
            for srtp in order:
                step = run_step(server, args.calls, srtp, args)
                step["cpu_ms_per_stream_s"] = 1000 * step["server_cpu_s"] / (args.calls * step["window_s"])
                step["net_cpu_ms_per_stream_s"] = (1000 * (step["server_cpu_s"] - idle_cpu_per_s * step["window_s"])
                                                   / (args.calls * step["window_s"]))
                phases.append(step)
                print(f"{describe(step)}\n     → {step['cpu_ms_per_stream_s']:.3f} ms CPU per stream-second "
                      f"(net of idle {step['net_cpu_ms_per_stream_s']:.3f})", flush=True)
        finally:
            server.stop()
        figures = {}
        for kind, srtp in (("rtp", False), ("srtp", True)):
            mine = [p for p in phases if p["srtp"] == srtp]
            figures[kind] = {key: sum(p[key] for p in mine) / len(mine)
                             for key in ("cpu_ms_per_stream_s", "net_cpu_ms_per_stream_s", "late_pct")}
        ratio = figures["srtp"]["cpu_ms_per_stream_s"] / figures["rtp"]["cpu_ms_per_stream_s"]
        net_ratio = figures["srtp"]["net_cpu_ms_per_stream_s"] / figures["rtp"]["net_cpu_ms_per_stream_s"]
        keyed = all(p["server_srtp_calls"] == (args.calls if p["srtp"] else 0) and not p["failed"] for p in phases)
        print(f"server CPU per stream-second: RTP {figures['rtp']['cpu_ms_per_stream_s']:.3f} ms, SRTP "
              f"{figures['srtp']['cpu_ms_per_stream_s']:.3f} ms: ratio {ratio:.2f} (net of idle {net_ratio:.2f}); "
              f"late at the callers RTP {figures['rtp']['late_pct']:.2f} %, SRTP {figures['srtp']['late_pct']:.2f} %"
              f"{'' if keyed else '; WARNING: some calls failed or were not keyed as asked'}")
        record.data.update(phases=phases, idle_cpu_per_s=idle_cpu_per_s, figures=figures, ratio=ratio,
                           net_ratio=net_ratio, args=vars(args))
        record.row(f"Server CPU per media stream, SRTP ({SRTP_SUITE}) vs plain RTP: {args.calls} calls each, one "
                   "`voicebot serve`, G.711 both ways, one run",
                   f"SRTP {figures['srtp']['cpu_ms_per_stream_s']:.2f} vs RTP "
                   f"{figures['rtp']['cpu_ms_per_stream_s']:.2f} ms CPU per stream-second: ratio **{ratio:.2f}** "
                   f"(net of idle {net_ratio:.2f}); late at the callers RTP {figures['rtp']['late_pct']:.1f} %, SRTP "
                   f"{figures['srtp']['late_pct']:.1f} %" + ("" if keyed else "; some calls failed"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
