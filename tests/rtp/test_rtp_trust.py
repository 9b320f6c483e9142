"""Which SDP media addresses are sent to before the peer's RTP arrives."""

from voicebot.rtp.trust import media_address_confirmed


def test_only_the_signalling_source_is_trusted_by_default() -> None:
    assert media_address_confirmed("192.0.2.10", "192.0.2.10")
    assert media_address_confirmed("2001:db8::1", "2001:db8:0::1")
    assert not media_address_confirmed("198.51.100.7", "192.0.2.10")
    assert not media_address_confirmed("169.254.169.254", "192.0.2.10")
    assert not media_address_confirmed("not-an-ip", "192.0.2.10")


def test_sdp_trust_accepts_any_offer_address() -> None:
    assert media_address_confirmed("198.51.100.7", "192.0.2.10", "sdp")
