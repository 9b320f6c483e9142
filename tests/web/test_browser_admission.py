"""BrowserAdmission (pure): per-source cap, per-minute rate, and the total shared with SIP calls."""

from __future__ import annotations

import pytest

from voicebot.web.admission import (
    Admitted,
    BrowserAdmission,
    BrowserLimits,
    Refused,
    source_key,
)
from voicebot.web.media_bind import media_addresses


def test_sip_calls_and_browser_calls_share_max_calls() -> None:
    sip_calls = [1]
    admission = BrowserAdmission(BrowserLimits(max_calls=2, per_source=5), other_calls=lambda: sip_calls[0])
    assert admission.admit("198.51.100.1", 0.0) == Admitted()
    refused = admission.admit("198.51.100.2", 1.0)  # one SIP + one browser call fill the server
    assert isinstance(refused, Refused) and refused.status == 503
    sip_calls[0] = 0
    assert admission.admit("198.51.100.2", 2.0) == Admitted() and admission.active == 2


def test_rate_limit_ages_out_after_a_minute_and_release_frees_the_slot() -> None:
    admission = BrowserAdmission(BrowserLimits(per_source=1, offers_per_source_per_min=2))
    assert admission.admit("a", 0.0) == Admitted()
    busy = admission.admit("a", 1.0)
    assert isinstance(busy, Refused) and busy.status == 429 and "in progress" in busy.reason
    admission.release("a")
    fast = admission.admit("a", 2.0)
    assert isinstance(fast, Refused) and "a minute" in fast.reason and fast.retry_after_s == 59
    assert admission.admit("b", 2.0) == Admitted()  # other sources are not affected
    assert admission.admit("a", 61.0) == Admitted()


def test_media_addresses() -> None:
    assert media_addresses("0.0.0.0") is None and media_addresses("::") is None and media_addresses(None) is None
    assert media_addresses("127.0.0.1") == ("127.0.0.1",) and media_addresses("[::1]") == ("::1",)
    with pytest.raises(ValueError, match="IP address"):
        media_addresses("voice.example.com")
    with pytest.raises(ValueError, match="at least 1"):
        BrowserLimits(per_source=0)


def test_ipv6_hosts_are_counted_per_64() -> None:
    assert source_key("2001:db8:1:2:aaaa::1") == source_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert source_key("::ffff:192.0.2.7") == "192.0.2.7" and source_key("192.0.2.7") == "192.0.2.7"
    admission = BrowserAdmission(BrowserLimits(per_source=1))
    assert admission.admit("2001:db8:1:2::1", 0.0) == Admitted()
    assert isinstance(admission.admit("2001:db8:1:2::2", 0.0), Refused)  # same /64: same client
    admission.release("2001:db8:1:2::1")
    assert admission.active == 0
