"""EWT: the Erlang-A-style estimate, the no-data case, spoken ranges, and accuracy on a seeded simulation."""

from __future__ import annotations

import pytest

from voicebot.queues.ewt import Ewt, announce, estimate, spoken_range
from voicebot.queues.simulation import simulate


def test_no_data_and_free_agent_cases():
    assert estimate(3, staffed=2, available=0, aht_s=None, handled=0) is None
    assert estimate(3, staffed=0, available=0, aht_s=120, handled=50) is None
    assert estimate(3, staffed=2, available=0, aht_s=120, handled=2) is None  # too few samples
    assert estimate(1, staffed=2, available=1, aht_s=120, handled=50) == Ewt(0.0, 0.0)
    with pytest.raises(ValueError):
        estimate(0, 1, 0, 100, 10)


def test_estimate_grows_with_position_and_shrinks_with_agents_and_abandonment():
    base = estimate(4, staffed=2, available=0, aht_s=240, handled=50)
    assert base.mid_s == pytest.approx(4 * 240 / 2, rel=0.3)  # mean of k departures at rate n/aht
    assert base.low_s < 480 < base.high_s
    assert estimate(8, 2, 0, 240, 50).mid_s > base.mid_s
    assert estimate(4, 4, 0, 240, 50).mid_s < base.mid_s
    assert estimate(4, 2, 0, 240, 50, patience_rate=1 / 300).mid_s < base.mid_s


def test_announcements_in_english_and_chinese():
    ewt = Ewt(170, 290)
    assert announce(ewt, "en-US") == "about 2 to 5 minutes"
    assert announce(ewt, "zh-CN") == "大约2到5分钟"
    assert announce(Ewt(10, 40), "en-US") == "less than a minute"
    assert announce(None, "en-US") == "we cannot estimate the wait right now"
    assert announce(Ewt(700, 1000), "en") == "about 10 to 20 minutes"
    assert announce(ewt, "en-US", position=3) == "You are number 3 in the queue. The wait is about 2 to 5 minutes."
    assert announce(ewt, "zh-CN", position=1) == "您是下一位。预计等待大约2到5分钟。"
    assert announce(None, "zh-CN", position=2) == "您排在第2位。暂时无法估计等待时间。"


def test_the_spoken_range_is_what_the_announcement_says():
    for ewt, said, told in [(Ewt(100, 250), "about 1 to 5 minutes", (60, 300)),
                            (Ewt(200, 290), "about 3 to 5 minutes", (180, 300)),
                            (Ewt(10, 50), "less than a minute", (0, 60)),
                            (Ewt(500, 800), "about 5 to 15 minutes", (300, 900))]:
        assert announce(ewt) == said and spoken_range(ewt) == told
    assert spoken_range(None) is None


def test_simulated_announcements_are_close_to_actual_waits():
    result = simulate(seed=7, calls=2000, agents=5, load=0.92, mean_patience_s=900)
    assert result.compared > 500 and result.abandoned > 0
    assert result.mae_s < 0.5 * result.mean_wait_s, result
    assert result.within_range > 0.6, result


def test_a_broken_estimator_would_fail_the_bound():
    """Guard the guard: ignoring the number of agents (n=1) must blow the MAE bound on the same data."""
    import voicebot.queues.simulation as simulation

    original = simulation.estimate
    simulation.estimate = lambda position, staffed, available, *rest: original(position, 1, available, *rest)
    try:
        result = simulation.simulate(seed=7, calls=2000, agents=5, load=0.92, mean_patience_s=900)
    finally:
        simulation.estimate = original
    assert result.mae_s > 0.5 * result.mean_wait_s
