"""EWT accuracy: seeded queue simulations driving the real ACD; prints the mean absolute error of announced waits.

    .venv/bin/python bench/ewt_simulation.py [--calls 3000] [--seeds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import BenchRecord  # noqa: E402
from voicebot.queues.simulation import simulate  # noqa: E402

SCENARIOS = {
    "5 agents, load 0.92, patience 15 min": dict(agents=5, load=0.92, mean_patience_s=900.0),
    "5 agents, load 0.85, no abandonment": dict(agents=5, load=0.85, mean_patience_s=None),
    "10 agents, load 0.95, patience 5 min": dict(agents=10, load=0.95, mean_patience_s=300.0),
    "2 agents, load 0.90, patience 10 min, handle cv 1.0": dict(agents=2, load=0.90, mean_patience_s=600.0, handle_spread=1.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    with BenchRecord("ewt_simulation") as record:
        print(f"{'scenario':52} {'mean wait':>9} {'MAE':>7} {'MAE/wait':>8} {'in range':>8} {'abandon':>7}")
        relative_errors, in_range = [], []
        for name, params in SCENARIOS.items():
            started = time.perf_counter()
            results = [simulate(seed=seed, calls=args.calls, **params) for seed in range(1, args.seeds + 1)]
            wait = statistics.fmean(r.mean_wait_s for r in results)
            mae = statistics.fmean(r.mae_s for r in results)
            inside = statistics.fmean(r.within_range for r in results)
            abandon = statistics.fmean(r.abandoned / r.calls for r in results)
            print(f"{name:52} {wait:8.1f}s {mae:6.1f}s {mae / wait:8.0%} {inside:8.0%} {abandon:7.1%}"
                  f"   ({time.perf_counter() - started:.1f}s)")
            record.data[name] = {"mean_wait_s": wait, "mae_s": mae, "within_range": inside, "abandoned": abandon}
            relative_errors.append(mae / wait)
            in_range.append(inside)
        record.row(f"EWT mean absolute error (simulated queues, {len(SCENARIOS)} scenarios × {args.seeds} seeds × "
                   f"{args.calls} calls)",
                   f"{min(relative_errors):.0%}–{max(relative_errors):.0%} of the mean wait; actual wait inside the "
                   f"announced range {min(in_range):.0%}–{max(in_range):.0%}")

if __name__ == "__main__":
    main()
