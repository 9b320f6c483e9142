"""Property tests: the parser raises only SipParseError on any input, and valid messages round-trip.

Hangs are caught by pytest-timeout (speed itself is measured by bench/sip_parse.py, not asserted here).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicebot.sip.headers import SipParseError
from voicebot.sip.message import SipRequest, SipResponse
from voicebot.sip.parser import parse_message
from voicebot.sip.validate import build_response, check_request

from tests.sip.torture import torture_files

FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


SEEDS = [p.read_bytes() for p in torture_files()]
INTERESTING = [b"\r\n", b"\n", b"\r", b" ", b"\t", b";", b",", b"<", b">", b'"', b"\\", b"\x00", b"%", b":", b"@",
               b"=", b"?", b"[", b"]", b"\xff", b"\xc3\xa9", b"SIP/2.0", b"\r\n ", b"9" * 30, b"-", b"/"]


def exercise(data: bytes) -> SipRequest | SipResponse | None:
    """Parse ``data``; whatever the outcome, the stack's follow-up calls must not raise either."""
    try:
        msg = parse_message(data)
    except SipParseError as err:
        assert err.status in (None, 400, 505, 513)
        if err.status is not None:
            build_response(err.headers, err.status, "")
        return None
    # Everything the transaction layer reads was validated by the parser.
    _ = (msg.top_via, msg.cseq, msg.from_, msg.to, msg.call_id, msg.content_type)
    if isinstance(msg, SipRequest):
        check_request(msg, supported_methods={"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"},
                      supported_extensions=set(), accepted_content_types={"application/sdp", "multipart/mixed"})
        assert build_response(msg, 500, "") is not None
    return msg


def assert_round_trip(msg: SipRequest | SipResponse) -> None:
    wire = msg.serialize()
    again = parse_message(wire)
    assert type(again) is type(msg) and again.body == msg.body
    strip_length = [kv for kv in msg.headers if kv[0] != "Content-Length"]
    assert [kv for kv in again.headers if kv[0] != "Content-Length"] == strip_length
    if isinstance(msg, SipRequest):
        assert (again.method, again.uri) == (msg.method, msg.uri)  # type: ignore[union-attr]
    else:
        assert (again.status, again.reason) == (msg.status, msg.reason)  # type: ignore[union-attr]
    assert again.serialize() == wire  # serialisation reaches a fixed point


@pytest.mark.timeout(60)
@FUZZ
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_raise_only_sip_parse_error(data: bytes) -> None:
    exercise(data)


@st.composite
def mutated_torture(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "flip"]))
        if action == "insert":
            data[pos:pos] = draw(st.sampled_from(INTERESTING))
        elif action == "delete":
            del data[pos:pos + draw(st.integers(1, 8))]
        elif action == "replace" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif action == "duplicate":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 40))]
        elif action == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


@pytest.mark.timeout(60)
@FUZZ
@given(mutated_torture())
def test_mutated_torture_messages(data: bytes) -> None:
    msg = exercise(data)
    if msg is not None:
        assert_round_trip(msg)


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_torture_seeds_are_exercised(index: int) -> None:
    msg = exercise(SEEDS[index])
    if msg is not None:
        assert_round_trip(msg)


HEADER_NAMES = ["Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq", "Contact", "m", "Max-Forwards",
                "Route", "Record-Route", "Content-Type", "c", "Expires", "Require", "Supported", "X-Custom",
                "Date", "Accept", "Subject", "l"]
value_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=60)
good_values = st.sampled_from([
    "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKabc", "<sip:a@example.com>;tag=1", "sip:b@example.com",
    '"Disp, Name" <sips:c@[2001:db8::1]:5061;transport=tls>', "12@host", "5 INVITE", "70", "application/sdp",
    "100rel, timer", "Thu, 21 Feb 2002 13:02:03 GMT", "*", "3600", "text/plain;charset=utf-8", ""])


@st.composite
def generated_request(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["INVITE", "OPTIONS", "BYE", "X-FOO"]))
    uri = draw(st.sampled_from(["sip:bot@example.com", "sips:[::1]:5061", "tel:+123", "sip:a%20b@h;lr"]))
    lines = [f"{method} {uri} SIP/2.0", "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1",
             "From: <sip:a@example.com>;tag=1", "To: <sip:bot@example.com>", "Call-ID: fuzz@h",
             f"CSeq: 1 {method}"]
    for _ in range(draw(st.integers(0, 8))):
        name = draw(st.sampled_from(HEADER_NAMES))
        value = draw(st.one_of(good_values, value_text))
        lines.insert(draw(st.integers(1, len(lines))), f"{name}: {value}")
    body = draw(st.binary(max_size=200))
    if draw(st.booleans()):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogatepass") + body


@pytest.mark.timeout(60)
@FUZZ
@given(generated_request())
def test_generated_requests_round_trip(data: bytes) -> None:
    msg = exercise(data)
    if msg is not None:
        assert_round_trip(msg)


URI_PIECES = st.sampled_from(list("abAB09:@;=?&.-_!~*'()+$,/[]%x ") + ["sips:", "1.2.3.4", "5060", "::1"])


@pytest.mark.timeout(60)
@FUZZ
@given(st.lists(URI_PIECES, max_size=14).map(lambda pieces: "sip:" + "".join(pieces)))
def test_uri_fast_path_agrees_with_general_path(text: str) -> None:
    import re

    import voicebot.sip.uri as uri

    def outcome() -> object:
        try:
            return uri.parse_uri(text)
        except SipParseError:
            return "error"

    fast = outcome()
    saved = uri._PLAIN_SIP_URI_RE
    uri._PLAIN_SIP_URI_RE = re.compile(r"(?!)")  # never matches: force the general path
    try:
        general = outcome()
    finally:
        uri._PLAIN_SIP_URI_RE = saved
    assert fast == general
