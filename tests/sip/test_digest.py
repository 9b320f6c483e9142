"""Digest authentication: RFC test vectors, header parsing, and the stateless server side."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebot.sip.digest import (
    Challenge,
    DigestError,
    build_authorization,
    challenge_header_name,
    make_challenge,
    parse_challenge,
    parse_challenges,
    parse_credentials,
    response_header_name,
    select_challenge,
    verify_authorization,
)

from tests.sip.torture import TORTURE_DIR

SECRET = b"0123456789abcdef-test-secret"
REALM = "voicebot.example"
NOW = 1_700_000_000.0
USERS = {"alice": "s3cret", "bob": 'p"w\\d'}

RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC7616_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)


# ---------------------------------------------------------------- RFC vectors


def test_rfc2617_section_3_5_example() -> None:
    challenge = parse_challenge(RFC2617_CHALLENGE)
    value = build_authorization(challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", cnonce="0a4f113b")
    params = parse_credentials(value)
    assert params["response"] == "6629fae49393a05397450978507c4ef1"
    assert params["qop"] == "auth" and params["nc"] == "00000001" and params["cnonce"] == "0a4f113b"
    assert params["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"
    assert params["uri"] == "/dir/index.html" and params["username"] == "Mufasa"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_examples(algorithm: str, expected: str) -> None:
    challenge = parse_challenge(RFC7616_CHALLENGE.format(alg=algorithm))
    assert challenge.algorithm == algorithm
    value = build_authorization(
        challenge,
        "GET",
        "/dir/index.html",
        "Mufasa",
        "Circle of Life",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    params = parse_credentials(value)
    assert params["response"] == expected
    assert params["algorithm"] == algorithm


# ---------------------------------------------------------------- challenge parsing


def test_parse_challenge_fields() -> None:
    c = parse_challenge(RFC2617_CHALLENGE)
    assert (c.realm, c.nonce, c.opaque, c.algorithm) == (
        "testrealm@host.com",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "5ccc069c403ebaf9f0171e9517f40e41",
        "MD5",
    )
    assert c.qop == ("auth", "auth-int")
    assert c.stale is False


def test_quoted_strings_with_commas_equals_and_escapes() -> None:
    c = parse_challenge(
        r'digest   realm = "a, b=c \"quoted\" \\ d" ,nonce="n,1",  stale=TRUE,'
        r' foo=bar, qop="auth", algorithm=sha-256 , extra="x,y"'
    )
    assert c.realm == 'a, b=c "quoted" \\ d'
    assert c.nonce == "n,1"
    assert c.stale is True
    assert c.qop == ("auth",)
    assert c.params["foo"] == "bar" and c.params["extra"] == "x,y"
    assert c.supported


def test_lowercase_algorithm_is_answered_with_canonical_name() -> None:
    c = parse_challenge('Digest realm="r", nonce="n", algorithm=sha-256-SESS, qop="auth"')
    params = parse_credentials(build_authorization(c, "REGISTER", "sip:r", "u", "p", cnonce="c"))
    assert params["algorithm"] == "SHA-256-sess"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ('Basic realm="x"', "only Digest"),
        ('Bearer realm="x", error="invalid_token"', "only Digest"),
        ('Digest nonce="abc"', "no realm"),
        ('Digest realm="abc"', "no nonce"),
        ('Digest realm="abc", nonce=""', "no nonce"),
        ('Digest realm="abc, nonce=x', "unterminated"),
        ('Digest realm="abc"x, nonce="n"', "expected ','"),
        ("Digest realm=abc nonce=n", "expected ','"),
        ('Digest realm="a", realm="b", nonce="n"', "duplicate"),
        ("", "empty"),
        ("   ", "empty"),
        ('Digest realm="a", ="x"', "unexpected"),
    ],
)
def test_bad_challenges(header: str, message: str) -> None:
    with pytest.raises(DigestError, match=message):
        parse_challenge(header)


def test_several_challenges_in_one_value_and_topmost_supported_wins() -> None:
    value = (
        'Digest realm="r", nonce="n1", algorithm=SHA-512-256-foo, qop="auth", '
        'Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth", '
        'Digest realm="r", nonce="n3", algorithm=MD5, qop="auth"'
    )
    challenges = parse_challenges(value)
    assert [c.nonce for c in challenges] == ["n1", "n2", "n3"]
    assert select_challenge(challenges).nonce == "n2"
    with pytest.raises(DigestError, match="several|2 challenges|3 challenges"):
        parse_challenge(value)


def test_select_challenge_fails_when_nothing_supported() -> None:
    with pytest.raises(DigestError, match="no supported"):
        select_challenge([Challenge(realm="r", nonce="n", algorithm="SHA-1")])


def test_header_names() -> None:
    assert response_header_name(401) == "Authorization"
    assert response_header_name(407) == "Proxy-Authorization"
    assert challenge_header_name(401) == "WWW-Authenticate"
    assert challenge_header_name(407) == "Proxy-Authenticate"
    with pytest.raises(ValueError, match="401 or 407"):
        response_header_name(403)


# ---------------------------------------------------------------- client-side building


def test_legacy_no_qop_md5() -> None:
    c = parse_challenge('Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"')
    params = parse_credentials(build_authorization(c, "GET", "/dir/index.html", "Mufasa", "Circle Of Life"))
    # RFC 2069 form: response = MD5(HA1:nonce:HA2), no qop/nc/cnonce

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = md5("Mufasa:testrealm@host.com:Circle Of Life")
    ha2 = md5("GET:/dir/index.html")
    assert params["response"] == md5(f"{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{ha2}")
    assert "qop" not in params and "nc" not in params and "cnonce" not in params


def test_sess_without_qop_is_refused() -> None:
    c = parse_challenge('Digest realm="r", nonce="n", algorithm=MD5-sess')
    with pytest.raises(DigestError, match="needs qop"):
        build_authorization(c, "INVITE", "sip:x@r", "u", "p")


def test_auth_int_hashes_body() -> None:
    c = parse_challenge('Digest realm="r", nonce="n", qop="auth-int"')
    a = parse_credentials(build_authorization(c, "INVITE", "sip:x@r", "u", "p", body=b"v=0", cnonce="c"))
    b = parse_credentials(build_authorization(c, "INVITE", "sip:x@r", "u", "p", body=b"v=1", cnonce="c"))
    assert a["qop"] == "auth-int"
    assert a["response"] != b["response"]


def test_nc_and_random_cnonce() -> None:
    c = parse_challenge('Digest realm="r", nonce="n", qop="auth"')
    first = parse_credentials(build_authorization(c, "REGISTER", "sip:r", "u", "p"))
    second = parse_credentials(build_authorization(c, "REGISTER", "sip:r", "u", "p", nc=26))
    assert second["nc"] == "0000001a"
    assert first["cnonce"] != second["cnonce"]
    with pytest.raises(ValueError, match="nonce count"):
        build_authorization(c, "REGISTER", "sip:r", "u", "p", nc=0)


def test_unsupported_algorithm_or_qop() -> None:
    with pytest.raises(DigestError, match="unsupported digest algorithm"):
        build_authorization(parse_challenge('Digest realm="r", nonce="n", algorithm=SHA-1'), "A", "u", "u", "p")
    with pytest.raises(DigestError, match="qop"):
        build_authorization(parse_challenge('Digest realm="r", nonce="n", qop="auth-conf"'), "A", "u", "u", "p")


def test_header_injection_refused() -> None:
    c = parse_challenge('Digest realm="r", nonce="n", qop="auth"')
    with pytest.raises(DigestError, match="CR, LF"):
        build_authorization(c, "REGISTER", "sip:r", "u\r\nVia: evil", "p")


# ---------------------------------------------------------------- server side


def _verify(value: str, now: float = NOW + 10, method: str = "REGISTER", **kwargs):  # type: ignore[no-untyped-def]
    return verify_authorization(value, method, USERS.get, REALM, SECRET, now, **kwargs)


@pytest.mark.parametrize("algorithm", ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256"])
@pytest.mark.parametrize("user", ["alice", "bob"])
def test_round_trip_each_algorithm(algorithm: str, user: str) -> None:
    header = make_challenge(REALM, algorithm, nonce_secret=SECRET, now=NOW)
    challenge = parse_challenge(header)
    assert challenge.algorithm == algorithm and challenge.qop == ("auth",)
    value = build_authorization(challenge, "REGISTER", "sip:voicebot.example", user, USERS[user])
    result = _verify(value)
    assert result.ok, result.reason
    assert result.username == user and not result.stale


def test_nonces_differ_and_are_deterministic_with_salt() -> None:
    a = make_challenge(REALM, nonce_secret=SECRET, now=NOW)
    b = make_challenge(REALM, nonce_secret=SECRET, now=NOW)
    assert parse_challenge(a).nonce != parse_challenge(b).nonce
    c = make_challenge(REALM, nonce_secret=SECRET, now=NOW, salt=b"12345678")
    d = make_challenge(REALM, nonce_secret=SECRET, now=NOW, salt=b"12345678")
    assert c == d


def _answer(algorithm: str = "SHA-256", user: str = "alice", password: str | None = None, now: float = NOW) -> str:
    challenge = parse_challenge(make_challenge(REALM, algorithm, nonce_secret=SECRET, now=now))
    return build_authorization(challenge, "REGISTER", "sip:voicebot.example", user, password or USERS[user])


def test_wrong_password_fails() -> None:
    result = _verify(_answer(password="guess"))
    assert not result.ok and not result.stale
    assert "response does not match" in result.reason
    assert result.username == "alice"


def test_tampered_response_fails() -> None:
    value = _answer()
    params = parse_credentials(value)
    flipped = ("0" if params["response"][0] != "0" else "1") + params["response"][1:]
    result = _verify(value.replace(params["response"], flipped))
    assert not result.ok and "response does not match" in result.reason


def test_tampered_method_or_uri_fails() -> None:
    value = _answer()
    assert not _verify(value, method="INVITE").ok
    assert not _verify(value.replace('uri="sip:voicebot.example"', 'uri="sip:other.example"')).ok
    assert not _verify(value, request_uri="sip:other.example").ok
    assert _verify(value, request_uri="sip:voicebot.example").ok


def test_expired_nonce_is_stale_only_with_right_password() -> None:
    value = _answer(now=NOW)
    late = NOW + 301
    result = _verify(value, now=late)
    assert not result.ok and result.stale and "expired" in result.reason
    wrong = _verify(_answer(password="guess", now=NOW), now=late)
    assert not wrong.ok and not wrong.stale
    assert _verify(value, now=NOW + 299).ok
    assert _verify(value, now=late, max_age=600).ok


def test_wrong_realm_fails() -> None:
    challenge = parse_challenge(make_challenge("other.example", nonce_secret=SECRET, now=NOW))
    value = build_authorization(challenge, "REGISTER", "sip:voicebot.example", "alice", "s3cret")
    result = _verify(value)
    assert not result.ok and "realm" in result.reason
    # same realm text rewritten by the client: nonce signature no longer matches
    forged = value.replace('realm="other.example"', f'realm="{REALM}"')
    result = _verify(forged)
    assert not result.ok and "nonce was not issued by us" in result.reason


def test_nonce_from_another_secret_or_forged_fails() -> None:
    challenge = parse_challenge(make_challenge(REALM, nonce_secret=b"another-secret-16bytes", now=NOW))
    value = build_authorization(challenge, "REGISTER", "sip:voicebot.example", "alice", "s3cret")
    assert "not issued by us" in _verify(value).reason
    forged = Challenge(realm=REALM, nonce="AAAA", algorithm="SHA-256", qop=("auth",))
    assert "not issued by us" in _verify(build_authorization(forged, "REGISTER", "sip:x", "alice", "s3cret")).reason


def test_algorithm_downgrade_with_same_nonce_fails() -> None:
    challenge = parse_challenge(make_challenge(REALM, "SHA-256", nonce_secret=SECRET, now=NOW))
    challenge.algorithm = "MD5"
    value = build_authorization(challenge, "REGISTER", "sip:voicebot.example", "alice", "s3cret")
    result = _verify(value)
    assert not result.ok and "not issued by us" in result.reason


def test_future_nonce_and_unknown_user_fail() -> None:
    assert "future" in _verify(_answer(now=NOW + 3600)).reason
    challenge = parse_challenge(make_challenge(REALM, nonce_secret=SECRET, now=NOW))
    value = build_authorization(challenge, "REGISTER", "sip:voicebot.example", "mallory", "x")
    result = _verify(value)
    assert not result.ok and "unknown user" in result.reason


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Basic YWxpY2U6czNjcmV0", "only Digest"),
        ('Digest username="alice", realm="voicebot.example"', "'nonce'"),
        ('Digest realm="unterminated', "unterminated"),
    ],
)
def test_malformed_credentials_fail_with_reason(value: str, message: str) -> None:
    result = _verify(value)
    assert not result.ok and message in result.reason


def test_rfc4475_unknown_authorization_scheme_is_refused() -> None:
    # RFC 4475 §3.3.7 (regaut01.dat): REGISTER with "Authorization: NoOneKnowsThisScheme opaque-data=here"
    raw = (TORTURE_DIR / "regaut01.dat").read_text()
    value = next(line.split(":", 1)[1].strip() for line in raw.splitlines() if line.startswith("Authorization:"))
    assert value.startswith("NoOneKnowsThisScheme")
    with pytest.raises(DigestError, match="unsupported authorization scheme 'NoOneKnowsThisScheme'"):
        parse_credentials(value)
    result = _verify(value)
    assert not result.ok and "NoOneKnowsThisScheme" in result.reason


def test_missing_cnonce_with_qop_fails() -> None:
    value = _answer()
    params = parse_credentials(value)
    stripped = value.replace(f', cnonce="{params["cnonce"]}"', "")
    result = _verify(stripped)
    assert not result.ok and "cnonce" in result.reason


def test_short_secret_rejected() -> None:
    with pytest.raises(ValueError, match="16"):
        make_challenge(REALM, nonce_secret=b"short", now=NOW)


# ---------------------------------------------------------------- properties

_SAFE_TEXT = st.text(alphabet=st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=200, deadline=None)
@given(user=_SAFE_TEXT.filter(bool), password=_SAFE_TEXT, realm=_SAFE_TEXT, uri=_SAFE_TEXT.filter(bool))
def test_round_trip_with_arbitrary_credentials(user: str, password: str, realm: str, uri: str) -> None:
    challenge = parse_challenge(make_challenge(realm, "SHA-256", nonce_secret=SECRET, now=NOW))
    assert challenge.realm == realm
    value = build_authorization(challenge, "INVITE", uri, user, password)
    assert parse_credentials(value)["username"] == user
    lookup = {user: password}.get
    assert verify_authorization(value, "INVITE", lookup, realm, SECRET, NOW + 1).ok
    assert not verify_authorization(value, "INVITE", {user: password + "x"}.get, realm, SECRET, NOW + 1).ok


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_headers_raise_only_digest_error_and_never_verify(text: str) -> None:
    with contextlib.suppress(DigestError):
        parse_challenges(text)
    assert not verify_authorization(text, "REGISTER", USERS.get, REALM, SECRET, NOW).ok


def test_nonce_bound_to_a_source_verifies_only_from_that_source() -> None:
    secret = b"k" * 32
    challenge = parse_challenge(make_challenge("r", "SHA-256", nonce_secret=secret, now=100, bind="192.0.2.7:5060"))
    auth = build_authorization(challenge, "REGISTER", "sip:r", "alice", "pw")
    same = verify_authorization(auth, "REGISTER", lambda _: "pw", "r", secret, 101, bind="192.0.2.7:5060")
    assert same.ok
    other = verify_authorization(auth, "REGISTER", lambda _: "pw", "r", secret, 101, bind="192.0.2.8:5060")
    assert not other.ok and "source" in other.reason
