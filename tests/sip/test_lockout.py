"""AuthLockout: failures in a window ban a source or a user; bans expire and back off on repeat."""

import pytest

from voicebot.sip.lockout import AuthLockout


def test_source_ban_after_threshold_expires_and_doubles_on_repeat() -> None:
    lock = AuthLockout(failures_per_source=3, failures_per_user=100, window_s=60, ban_s=10)
    assert lock.failed("192.0.2.1", "alice", 0) == [] and lock.failed("192.0.2.1", None, 1) == []
    [ban] = lock.failed("192.0.2.1", "bob", 2)
    assert (ban.scope, ban.key, ban.until, ban.failures) == ("source", "192.0.2.1", 12, 3)
    assert lock.locked("192.0.2.1", "carol", 5) is not None and lock.locked("192.0.2.9", "alice", 5) is None
    assert lock.locked("192.0.2.1", "alice", 12) is None
    for t in (13, 14):
        lock.failed("192.0.2.1", None, t)
    assert lock.failed("192.0.2.1", None, 15)[0].until == 35  # second ban: 20 s


def test_failures_outside_the_window_do_not_count_and_user_bans_span_sources() -> None:
    lock = AuthLockout(failures_per_source=2, failures_per_user=3, window_s=10, ban_s=5)
    lock.failed("192.0.2.1", "alice", 0)
    assert lock.failed("192.0.2.1", "alice", 11) == []  # the first one left the window
    lock.failed("192.0.2.2", "alice", 12)
    bans = lock.failed("192.0.2.3", "alice", 13)
    assert [b.scope for b in bans] == ["user"]
    assert lock.locked("198.51.100.7", "alice", 14).scope == "user"  # type: ignore[union-attr]


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AuthLockout(failures_per_source=0)
    with pytest.raises(ValueError, match="ban_s"):
        AuthLockout(ban_s=100, max_ban_s=10)
