"""SourceLimiter: token buckets per source, bans for persistent floods and scanner user agents."""

from voicebot.sip.ratelimit import SourceLimiter


def test_burst_then_steady_rate() -> None:
    limiter = SourceLimiter(rate=10, burst=5)
    assert all(limiter.admit("192.0.2.1", 0.0) for _ in range(5))
    assert not limiter.admit("192.0.2.1", 0.0)
    assert limiter.admit("192.0.2.1", 0.1)  # one token back after 100 ms at 10/s
    assert not limiter.admit("192.0.2.1", 0.1)


def test_sources_are_independent() -> None:
    limiter = SourceLimiter(rate=1, burst=1)
    assert limiter.admit("192.0.2.1", 0.0)
    assert not limiter.admit("192.0.2.1", 0.0)
    assert limiter.admit("192.0.2.2", 0.0)


def test_persistent_flood_is_banned_then_released() -> None:
    limiter = SourceLimiter(rate=1, burst=1, ban_after=3, ban_s=60)
    limiter.admit("198.51.100.9", 0.0)
    for _ in range(3):
        assert not limiter.admit("198.51.100.9", 0.0)
    assert limiter.banned("198.51.100.9", 1.0)
    assert not limiter.admit("198.51.100.9", 30.0)  # still banned although tokens refilled
    assert limiter.admit("198.51.100.9", 61.0)


def test_scanner_user_agent_is_banned_at_once() -> None:
    limiter = SourceLimiter()
    assert not limiter.admit("203.0.113.5", 0.0, "friendly-scanner")
    assert limiter.banned("203.0.113.5", 10.0)
    assert limiter.admit("203.0.113.6", 0.0, "Linphone/5.2")


def test_source_table_is_bounded() -> None:
    limiter = SourceLimiter(rate=100, burst=1, max_sources=100)
    for i in range(1000):
        limiter.admit(f"10.0.{i // 256}.{i % 256}", float(i))
    assert len(limiter._buckets) <= 100  # noqa: SLF001


def test_sustained_flood_is_banned_although_some_requests_get_through() -> None:
    bans: list[tuple[str, str]] = []
    limiter = SourceLimiter(rate=20, burst=40, on_ban=lambda source, reason: bans.append((source, reason)))
    now, admitted = 0.0, 0
    while not bans and now < 30:  # 40 requests/s: every other one is refused, every other admitted
        admitted += limiter.admit("198.51.100.7", now)
        now += 1 / 40
    assert bans == [("198.51.100.7", "flood")] and admitted > 40
    assert now < 15  # reached at twice the rate within seconds, not only above ~1,000/s
    assert not limiter.admit("198.51.100.7", now + 1)


def test_a_source_just_over_its_rate_now_and_then_is_not_banned() -> None:
    limiter = SourceLimiter(rate=20, burst=40)
    for second in range(120):  # 25 requests in a burst each second: 5 refused per second
        for _ in range(25):
            limiter.admit("192.0.2.9", float(second))
    assert not limiter.banned("192.0.2.9", 120.0)
