"""AuditThrottle (pure): a few lines per key and overall per window, the rest counted and reported once."""

from __future__ import annotations

import pytest

from voicebot.api.audit_throttle import AuditThrottle


def test_per_key_and_total_limits_and_counts() -> None:
    throttle = AuditThrottle(per_key=2, total=3, window_s=60)
    assert [throttle.allow("a", 0.0) for _ in range(5)] == [True, True, False, False, False]
    assert throttle.allow("b", 1.0) is True and throttle.allow("c", 1.0) is False  # total of 3 reached
    assert throttle.drain(30.0) == []  # windows still open
    assert sorted(throttle.drain(61.0)) == [("a", 3), ("c", 1)]
    assert throttle.drain(62.0) == []  # reported once
    assert throttle.allow("a", 62.0) is True  # a new window


def test_force_drain_and_bad_limits() -> None:
    throttle = AuditThrottle(per_key=1, total=10, window_s=60, max_keys=2)
    for key in ("a", "a", "b", "b", "c"):  # "c" evicts "a", whose count is kept
        throttle.allow(key, 0.0)
    assert sorted(throttle.drain(1.0, force=True)) == [("a", 1), ("b", 1)]
    with pytest.raises(ValueError, match="positive"):
        AuditThrottle(per_key=0)
