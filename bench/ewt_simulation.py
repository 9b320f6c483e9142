"""EWT accuracy: seeded queue simulations driving the real ACD; prints the mean absolute error of announced waits.

    .venv/bin/python bench/ewt_simulation.py [--calls 3000] [--seeds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from voicebot.queues.simulation import simulate

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
    print(f"{'scenario':52} {'mean wait':>9} {'MAE':>7} {'MAE/wait':>8} {'in range':>8} {'abandon':>7}")
    for name, params in SCENARIOS.items():
        started = time.perf_counter()
        results = [simulate(seed=seed, calls=args.calls, **params) for seed in range(1, args.seeds + 1)]
        wait = statistics.fmean(r.mean_wait_s for r in results)
        mae = statistics.fmean(r.mae_s for r in results)
        inside = statistics.fmean(r.within_range for r in results)
        abandon = statistics.fmean(r.abandoned / r.calls for r in results)
        print(f"{name:52} {wait:8.1f}s {mae:6.1f}s {mae / wait:8.0%} {inside:8.0%} {abandon:7.1%}"
              f"   ({time.perf_counter() - started:.1f}s)")


if __name__ == "__main__":
    main()
