"""A seeded discrete-event simulation of one queue, driving the real `Acd`, to measure the EWT estimator.

Callers arrive (Poisson), are told an estimated wait when they join, wait (or give up after an exponential
patience), and are served for a random handle time. The result compares each announced estimate (range
midpoint) with the wait the caller really had. Used by bench/ewt_simulation.py and a test.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from dataclasses import dataclass

from voicebot.queues.acd import Acd
from voicebot.queues.ewt import Ewt, estimate
from voicebot.queues.models import AgentsConfig, QueuesConfig

__all__ = ["SimulationResult", "simulate"]


@dataclass(frozen=True)
class SimulationResult:
    calls: int
    served: int
    abandoned: int
    compared: int  # callers who had to queue, got an estimate and were served
    mean_wait_s: float  # actual, over the compared callers
    mae_s: float  # mean |estimate midpoint - actual wait|
    within_range: float  # share of actual waits inside the announced range
    no_estimate: int  # callers told "no data"


def simulate(
    seed: int = 1,
    calls: int = 3000,
    agents: int = 5,
    mean_handle_s: float = 180.0,
    load: float = 0.92,
    mean_patience_s: float | None = 900.0,
    handle_spread: float = 0.5,
) -> SimulationResult:
    """Run `calls` arrivals at offered load `load` (arrival rate = load * agents / mean_handle_s)."""
    rng = random.Random(seed)
    agents_config = AgentsConfig.model_validate(
        {"agents": [{"id": f"a{i}", "name": f"Agent {i}", "browser": True, "skills": {"s": 1}, "languages": ["en"],
                     "wrap_up_s": 0} for i in range(agents)]}
    )
    queues_config = QueuesConfig.model_validate({"queues": [{"name": "q", "skills": ["s"], "max_size": 100000}]})
    acd = Acd(agents_config, queues_config)
    for agent_id in acd.agents:
        acd.agent_state(agent_id, "available", 0.0)
    arrival_rate = load * agents / mean_handle_s
    events: list[tuple[float, int, str, str]] = []
    sequence = 0

    def schedule(at: float, kind: str, call_id: str) -> None:
        nonlocal sequence
        sequence += 1
        heapq.heappush(events, (at, sequence, kind, call_id))

    def handle_time() -> float:  # lognormal with the given mean and coefficient of variation
        sigma2 = math.log(1 + handle_spread**2)
        mu = math.log(mean_handle_s) - sigma2 / 2
        return rng.lognormvariate(mu, sigma2**0.5)

    announced: dict[str, Ewt | None] = {}
    arrived_at: dict[str, float] = {}
    waits: dict[str, float] = {}
    abandoned = 0
    now = 0.0
    for index in range(calls):
        now += rng.expovariate(arrival_rate)
        schedule(now, "arrive", f"c{index}")

    def dispatch(at: float) -> None:
        while (assignment := acd.next_assignment(at)) is not None:
            acd.agent_answered(assignment.id, at)
            waits[assignment.call_id] = at - arrived_at[assignment.call_id]
            schedule(at + handle_time(), "end", assignment.call_id)

    while events:
        at, _, kind, call_id = heapq.heappop(events)
        if kind == "arrive":
            arrived_at[call_id] = at
            position = acd.enqueue(call_id, "q", (), 0, "", at)
            staffed, available = acd.staffed("q")
            stats = acd.state.stats["q"]
            announced[call_id] = estimate(
                position.position, staffed, available, stats.aht_s, stats.handled, stats.patience_rate
            )
            if mean_patience_s is not None:
                schedule(at + rng.expovariate(1 / mean_patience_s), "give_up", call_id)
            dispatch(at)
        elif kind == "give_up":
            if call_id in acd.state.entries:
                acd.abandon(call_id, at)
                abandoned += 1
        else:
            acd.call_ended(call_id, at)
            dispatch(at)

    compared = [
        (shown, waits[c]) for c in waits if (shown := announced.get(c)) is not None and shown.high_s > 0
    ]
    errors = [abs(ewt.mid_s - wait) for ewt, wait in compared]
    inside = [ewt.low_s <= wait <= ewt.high_s for ewt, wait in compared]
    return SimulationResult(
        calls=calls,
        served=len(waits),
        abandoned=abandoned,
        compared=len(compared),
        mean_wait_s=statistics.fmean(w for _, w in compared) if compared else 0.0,
        mae_s=statistics.fmean(errors) if errors else 0.0,
        within_range=sum(inside) / len(inside) if inside else 0.0,
        no_estimate=sum(1 for e in announced.values() if e is None),
    )
