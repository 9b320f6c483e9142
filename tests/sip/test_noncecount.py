"""NonceCounts: a verified nonce may be reused only with an increasing nonce count, until it expires."""

from voicebot.sip.noncecount import NonceCounts


def test_nonce_count_must_increase_and_legacy_form_is_single_use() -> None:
    counts = NonceCounts()
    assert counts.accept("n1", 1, expires_at=100, now=0)
    assert not counts.accept("n1", 1, expires_at=100, now=1)  # replay
    assert counts.accept("n1", 3, expires_at=100, now=2)
    assert not counts.accept("n1", 2, expires_at=100, now=3)
    assert counts.accept("legacy", None, expires_at=100, now=0)
    assert not counts.accept("legacy", None, expires_at=100, now=1)


def test_expired_nonces_are_forgotten_and_a_full_table_refuses() -> None:
    counts = NonceCounts(max_entries=2)
    assert counts.accept("a", 1, expires_at=10, now=0) and counts.accept("b", 1, expires_at=50, now=0)
    assert not counts.accept("c", 1, expires_at=60, now=5)  # full, nothing expired
    assert counts.accept("c", 1, expires_at=60, now=20)  # "a" expired and was pruned
    assert len(counts) == 2
