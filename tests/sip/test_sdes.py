"""SDES a=crypto lines (RFC 4568): parsing the RFC's own examples, what is usable, generation, no key in reprs."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebot.sip.sdes import SUITES, CryptoAttribute, SdesError, new_crypto, parse_crypto, unusable_reason

# RFC 4568 §4 and §6.10 (the attribute values after "a=crypto:")
RFC_SECTION_4 = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4"
RFC_OFFER_1 = ("1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4 "
               "FEC_ORDER=FEC_SRTP")
RFC_OFFER_2 = "2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32"
RFC_MULTI_KEY = ("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4;"
                 "inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4")
PLAIN = "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"


def test_rfc_4568_example_parses_with_lifetime_and_mki() -> None:
    crypto = parse_crypto(RFC_SECTION_4)
    assert crypto.tag == 1 and crypto.suite == "AES_CM_128_HMAC_SHA1_80"
    assert crypto.key == base64.b64decode("PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR") and len(crypto.key) == 30
    assert crypto.lifetime == 2**20 and crypto.mki == (1, 4)
    assert unusable_reason(crypto) == "keys with an MKI (or several keys) are not supported"


def test_rfc_offer_examples() -> None:
    first = parse_crypto(RFC_OFFER_1)
    assert first.session_params == ("FEC_ORDER=FEC_SRTP",) and first.mki == (1, 4)
    second = parse_crypto(RFC_OFFER_2)
    assert second.suite == "AES_CM_128_HMAC_SHA1_32" and second.mki == (1, 32) and len(second.key) == 30
    multi = parse_crypto(RFC_MULTI_KEY)
    assert multi.extra_keys == 1 and unusable_reason(multi) is not None


def test_a_plain_line_is_usable_and_round_trips() -> None:
    crypto = parse_crypto(PLAIN)
    assert unusable_reason(crypto) is None and crypto.lifetime is None and crypto.mki is None
    assert crypto.serialize() == PLAIN
    assert parse_crypto(crypto.serialize()) == crypto


@pytest.mark.parametrize("value,reason", [
    ("1 AES_256_CM_HMAC_SHA1_80 inline:" + "A" * 62 + "==", "not supported"),
    ("1 F8_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz", "not supported"),
    ("1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7", "30-byte"),
    (PLAIN + "|2^10", "too short"),
    (PLAIN + " KDR=3", "KDR=3"),
    (PLAIN + " UNENCRYPTED_SRTP", "UNENCRYPTED_SRTP"),
    (PLAIN + " WSH=10", "replay window 10"),
])
def test_unusable_lines_say_why(value: str, reason: str) -> None:
    found = unusable_reason(parse_crypto(value))
    assert found is not None and reason in found


def test_window_size_from_wsh() -> None:
    crypto = parse_crypto(PLAIN + " KDR=0 WSH=256")
    assert unusable_reason(crypto) is None and crypto.window_size == 256


@pytest.mark.parametrize("value,message", [
    ("1 AES_CM_128_HMAC_SHA1_80", "needs"),
    ("x AES_CM_128_HMAC_SHA1_80 inline:QUJD", "tag"),
    ("1 AES_CM_128_HMAC_SHA1_80 uri:http://example.com/key", "inline"),
    ("1 AES_CM_128_HMAC_SHA1_80 inline:not*base64", "base64"),
    ("1 AES_CM_128_HMAC_SHA1_80 inline:QUJD|bogus", "lifetime"),
    ("1 AES_CM_128_HMAC_SHA1_80 inline:QUJD|1:0", "MKI length"),
])
def test_malformed_lines_raise(value: str, message: str) -> None:
    with pytest.raises(SdesError, match=message):
        parse_crypto(value)


def test_errors_and_reprs_never_show_the_key() -> None:
    secret = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
    crypto = parse_crypto(PLAIN)
    assert secret not in repr(crypto) and "key=" not in repr(crypto)
    with pytest.raises(SdesError) as info:
        parse_crypto(f"1 AES_CM_128_HMAC_SHA1_80 inline:{secret}|{secret}")
    assert secret not in str(info.value)


def test_new_keys_are_random_and_of_the_suite_length() -> None:
    keys = {new_crypto(1, suite).key for suite in SUITES for _ in range(3)}
    assert len(keys) == 6 and all(len(key) == 30 for key in keys)
    assert isinstance(new_crypto(2, "AES_CM_128_HMAC_SHA1_32"), CryptoAttribute)
    with pytest.raises(ValueError, match="not supported"):
        new_crypto(1, "AES_256_CM_HMAC_SHA1_80")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789 AES_CM128HMACSH80inlne:|^;=+/KDRWabcxyz"), max_size=120))
def test_fuzzed_crypto_values_raise_only_sdes_errors(value: str) -> None:
    try:
        crypto = parse_crypto(value)
    except SdesError:
        return
    unusable_reason(crypto)  # classifies any parsed line without raising
    assert parse_crypto(crypto.serialize()).key == crypto.key
