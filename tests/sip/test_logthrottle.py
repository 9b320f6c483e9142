"""LogThrottle and clip: a flood of one kind of event writes one line per interval, with a suppressed count."""

from voicebot.sip.logthrottle import LogThrottle, clip


def test_first_event_logs_then_counts_until_the_interval_passes() -> None:
    throttle = LogThrottle(every_s=5)
    assert throttle.admit("parse", 0.0) == 0
    assert [throttle.admit("parse", t) for t in (1.0, 2.0, 4.9)] == [None, None, None]
    assert throttle.admit("other", 1.0) == 0  # kinds are independent
    assert throttle.admit("parse", 5.0) == 3
    assert throttle.admit("parse", 11.0) == 0


def test_clip_keeps_short_text_and_cuts_long_text_saying_how_much() -> None:
    assert clip("short") == "short"
    assert clip("a" * 1000, 10) == "a" * 10 + "...(+990 chars)"
