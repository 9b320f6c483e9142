"""Parser / serialiser details of voicebot.sip.message and the UAS helpers of voicebot.sip.validate."""

from __future__ import annotations

import pytest

from voicebot.sip.headers import Headers, SipParseError, canonical_name, split_list
from voicebot.sip.message import SipRequest, SipResponse
from voicebot.sip.parser import is_keepalive, parse_message
from voicebot.sip.uri import parse_name_addr, parse_params, parse_uri
from voicebot.sip.fields import parse_via
from voicebot.sip.parser import split_multipart
from voicebot.sip.validate import build_response, check_request, default_reason

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def request(method: str = "INVITE", uri: str = "sip:bot@example.com", extra: tuple[str, ...] = (),
            body: bytes = b"", content_length: bool = True) -> bytes:
    lines = [f"{method} {uri} SIP/2.0",
             "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9;rport",
             "Max-Forwards: 70",
             "From: Alice <sip:alice@example.com>;tag=9fxced76sl",
             "To: <sip:bot@example.com>",
             "Call-ID: 3848276298220188511@example.com",
             f"CSeq: 1 {method}",
             *extra]
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def parse_error(data: bytes, **kwargs: int) -> SipParseError:
    with pytest.raises(SipParseError) as info:
        parse_message(data, **kwargs)  # type: ignore[arg-type]
    return info.value


# ----------------------------------------------------------------------------------------------- parsing


def test_compact_forms_expand_to_canonical_names() -> None:
    data = (b"OPTIONS sip:bot@example.com SIP/2.0\r\nv: SIP/2.0/UDP h.example.com;branch=z9hG4bKa\r\n"
            b"f: <sip:a@example.com>;tag=1\r\nt: <sip:bot@example.com>\r\ni: abc@h\r\n"
            b"CSeq: 2 OPTIONS\r\nk: replaces\r\nc: text/plain\r\nl: 2\r\n\r\nhi")
    msg = parse_message(data)
    assert [k for k, _ in msg.headers] == ["Via", "From", "To", "Call-ID", "CSeq", "Supported", "Content-Type",
                                           "Content-Length"]
    assert msg.call_id == "abc@h" and msg.body == b"hi" and msg.content_type == "text/plain"
    assert canonical_name("x-my-HEADER") == "X-My-Header" and canonical_name("CALL-id") == "Call-ID"


def test_folded_lines_are_unfolded_with_one_space() -> None:
    msg = parse_message(request(extra=("Subject: first\r\n\tsecond\r\n   third",)))
    assert msg.headers.get("Subject") == "first second third"


def test_multi_value_via_in_order() -> None:
    msg = parse_message(request(extra=("Via: SIP/2.0/TCP b.example.com;branch=z9hG4bK2 , "
                                       "SIP/2.0/UDP c.example.com:5070;branch=z9hG4bK3",)))
    vias = [parse_via(v) for v in msg.headers.values("Via")]
    assert [(v.host, v.port) for v in vias] == [("192.0.2.1", 5060), ("b.example.com", None),
                                                ("c.example.com", 5070)]
    assert msg.top_via.branch == "z9hG4bK74bf9" and msg.top_via.params["rport"] is None


def test_ipv6_hosts_in_via_and_uri() -> None:
    via = parse_via("SIP/2.0/UDP [2001:DB8::1]:5070;branch=z9hG4bKx;received=2001:db8::2")
    assert (via.host, via.port, via.params["received"]) == ("2001:db8::1", 5070, "2001:db8::2")
    assert str(via) == "SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bKx;received=2001:db8::2"
    uri = parse_uri("sip:alice@[2001:db8::10]:5060;transport=udp")
    assert (uri.user, uri.host, uri.port, uri.params) == ("alice", "2001:db8::10", 5060, {"transport": "udp"})
    assert str(uri) == "sip:alice@[2001:db8::10]:5060;transport=udp"
    msg = parse_message(request(uri="sip:bot@[::1]:5062").replace(b"192.0.2.1:5060", b"[::1]:5080"))
    assert msg.top_via.host == "::1" and parse_uri(msg.uri).port == 5062
    for bad in ("sip:a@[2001:db8::zz]", "sip:a@[::1", "sip:a@[::1]x"):
        with pytest.raises(SipParseError):
            parse_uri(bad)


def test_via_sent_by_allows_lws_around_colon() -> None:
    via = parse_via("SIP / 2.0 / UDP host.example.com : 5060 ; branch = z9hG4bKq")
    assert (via.host, via.port, via.branch) == ("host.example.com", 5060, "z9hG4bKq")
    for bad in ("SIP/2.0/UDP host.example.com;branch=", "SIP/2.0/UDP host;ttl=256",
                "SIP/2.0/UDP host;received=nowhere", "SIP/3.0/UDP host", "SIP/2.0/UDP a b"):
        with pytest.raises(SipParseError):
            parse_via(bad)


def test_content_length_truncates_extra_octets() -> None:
    msg = parse_message(request(body=b"abc") + b"garbage after the message")
    assert msg.body == b"abc"


def test_datagram_without_content_length_takes_the_rest() -> None:
    data = request(body=SDP, content_length=False, extra=("Content-Type: application/sdp",))
    assert parse_message(data).body == SDP
    err = parse_error(data, stream=True)  # type: ignore[arg-type]
    assert err.status == 400 and "Content-Length required" in err.reason


def test_crlf_keepalive_and_leading_crlf() -> None:
    assert is_keepalive(b"\r\n\r\n") and is_keepalive(b"\r\n") and not is_keepalive(b"\r\nX")
    err = parse_error(b"\r\n\r\n")
    assert err.status is None
    assert parse_message(b"\r\n\r\n" + request()).method == "INVITE"  # type: ignore[union-attr]


def test_oversize_message_gets_513_when_answerable() -> None:
    big = request(body=b"x" * 2000)
    err = parse_error(big, max_size=1000)
    assert err.status == 513 and err.method == "INVITE" and "exceeds" in err.reason
    resp = build_response(err.headers, err.status, "")
    assert resp is not None and resp.reason == "Message Too Large"
    assert parse_error(b"x" * 2000, max_size=1000).status is None  # garbage: nothing to answer
    response = b"SIP/2.0 200 OK\r\n" + request()[request().index(b"\r\n") + 2:] + b"y" * 2000
    assert parse_error(response, max_size=1000).status is None  # responses are never answered
    assert parse_message(big, max_size=len(big)).body == b"x" * 2000


def test_header_count_limit() -> None:
    extra = tuple(f"X-H{i}: {i}" for i in range(12))
    assert len(parse_message(request(extra=extra)).headers) == 19
    err = parse_error(request(extra=extra), max_headers=10)
    assert err.status == 400 and "too many header fields" in err.reason


HUGE = 64 * 1024


@pytest.mark.timeout(10)
@pytest.mark.parametrize("extra", [
    ("X-Long: " + "a" * HUGE,),
    ("X-Spaces: a" + " " * HUGE + "b",),
    ("Subject: x\r\n" + " y\r\n" * (HUGE // 4),),
    ("Contact: " + "<" * HUGE,),
    ("Contact: <sip:a@b>" + ";" * HUGE,),
    ("Contact: \"" + "\\\"" * (HUGE // 2) + " <sip:a@b>",),
    ("Contact: <sip:" + "a:" * (HUGE // 2) + "@b>",),
    ("Contact: sip:" + "a" * HUGE + "@" + "b" * 100,),
    ("Contact: <sip:a@b;" + "p=1;" * (HUGE // 4) + ">",),
    ("Via: SIP/2.0/UDP " + "h" * HUGE + ";branch=z9hG4bK1",),
    ("Via: SIP/2.0/UDP h;branch=z9hG4bK1" + ",SIP/2.0/UDP h" * (HUGE // 10),),
    ("Require: " + "tag," * (HUGE // 4),),
    ("Date: " + "Mon, " * (HUGE // 5),),
    tuple(["X-A: 1"] * (HUGE // 8)),
], ids=lambda e: e[0][:20])
def test_64k_headers_do_not_hang_or_crash(extra: tuple[str, ...]) -> None:
    data = request(extra=extra)
    assert len(data) > HUGE
    try:
        msg = parse_message(data, max_size=1 << 20, max_headers=1 << 20)
    except SipParseError as err:
        assert err.status in (400, None)
    else:
        assert msg.headers.get_all(extra[0].split(":", 1)[0])


def test_huge_digit_strings_are_out_of_range_not_crashes() -> None:
    for header in ("Expires: " + "9" * 5000, "Max-Forwards: 00000000000000000000000000070",
                   "Content-Length: \uff11"):
        data = request(extra=(header,)) if not header.startswith("Content-Length") else \
            request(content_length=False, extra=(header,))
        if header.startswith("Max-Forwards"):
            data = data.replace(b"Max-Forwards: 70\r\n", b"")
            assert parse_message(data).headers.get("Max-Forwards") == header.split(": ")[1]
        else:
            assert parse_error(data).status == 400


def test_round_trip_preserves_order_and_values() -> None:
    data = (b"INVITE sip:bot@example.com;user=phone SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1, SIP/2.0/TCP p.example.com;branch=z9hG4bK2\r\n"
            b"X-Custom:   spaced   value  \r\n"
            b"From: \"A  B\" <sip:a@example.com>;tag=1\r\nTo: sip:bot@example.com\r\n"
            b"l: 3\r\nCall-ID: c@h\r\nCSeq: 7 INVITE\r\nContent-Type: text/plain\r\n"
            b"X-Raw: \xff\xfe latin\xe9\r\n\r\nabc")
    msg = parse_message(data)
    assert msg.headers.get("X-Custom") == "spaced   value"
    out = msg.serialize()
    assert out == (b"INVITE sip:bot@example.com;user=phone SIP/2.0\r\n"
                   b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1, SIP/2.0/TCP p.example.com;branch=z9hG4bK2\r\n"
                   b"X-Custom: spaced   value\r\nFrom: \"A  B\" <sip:a@example.com>;tag=1\r\n"
                   b"To: sip:bot@example.com\r\nContent-Length: 3\r\nCall-ID: c@h\r\nCSeq: 7 INVITE\r\n"
                   b"Content-Type: text/plain\r\nX-Raw: \xff\xfe latin\xe9\r\n\r\nabc")
    assert parse_message(out) == msg
    msg.body = b"longer body"
    assert b"\r\nContent-Length: 11\r\nCall-ID" in msg.serialize()


def test_serialiser_refuses_header_injection() -> None:
    h = Headers()
    with pytest.raises(ValueError, match="CR or LF"):
        h.add("X-Context", "1\r\nBYE sip:x SIP/2.0")
    with pytest.raises(ValueError, match="not a token"):
        h.set("X Bad", "v")
    h.add("X-Ok", "v")
    h.set("x-ok", "w")
    assert list(h) == [("X-Ok", "w")]


def test_prepend_puts_the_header_first_and_refuses_injection() -> None:
    h = Headers([("Via", "SIP/2.0/UDP b;branch=z9hG4bK2"), ("v", "SIP/2.0/UDP c;branch=z9hG4bK3")])
    h.prepend("via", "SIP/2.0/UDP a;branch=z9hG4bK1")
    assert h.get_all("Via") == ["SIP/2.0/UDP a;branch=z9hG4bK1", "SIP/2.0/UDP b;branch=z9hG4bK2",
                                "SIP/2.0/UDP c;branch=z9hG4bK3"]
    with pytest.raises(ValueError, match="CR or LF"):
        h.prepend("Via", "x\r\nBYE")


def test_bare_lf_messages_are_tolerated() -> None:
    msg = parse_message(request().replace(b"\r\n", b"\n"))
    assert isinstance(msg, SipRequest) and msg.call_id == "3848276298220188511@example.com"


@pytest.mark.parametrize("mutation, cause", [
    ((b"To: <sip:bot@example.com>", b"To: <sip:bot@example.com>\x01"), "control character"),
    ((b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\rX-A: b\r\n"), "bare CR"),
    ((b"Max-Forwards: 70", b"Max-Forwards 70"), "malformed header line"),
    ((b"SIP/2.0\r\nVia", b"SIP/2.0\r\n folded\r\nVia"), "continuation"),
    ((b"Call-ID: 3848276298220188511@example.com", b"Call-ID: a b"), "Call-ID"),
    ((b"To: <sip:bot@example.com>", b"To: <sip:bot@example.com>;tag=1;tag=2"), "duplicate"),
    ((b"To: <sip:bot@example.com>", b"To: <sip:bot@example.com>;tag=\"x"), "unterminated"),
    ((b"To: <sip:bot@example.com>", b"To: <sip:bot@example.com> junk"), "garbage"),
    ((b"INVITE sip:bot@example.com", b"INVITE sip:bot@example.com:0"), "port"),
    ((b"INVITE sip:bot@example.com", b"INVITE sip:b#t@example.com"), "user part"),
])
def test_specific_syntax_errors(mutation: tuple[bytes, bytes], cause: str) -> None:
    data = request().replace(*mutation)
    assert data != request()
    err = parse_error(data)
    assert cause.lower() in err.reason.lower()
    assert err.status == 400


def test_malformed_ack_and_responses_are_dropped() -> None:
    ack = request(method="ACK").replace(b"Max-Forwards: 70", b"Max-Forwards: 700")
    assert parse_error(ack).status is None
    for start in (b"SIP/2.0 99 Odd", b"SIP/2.0 2000 OK", b"SIP/2.0 abc OK", b"SIP/1.0 200 OK"):
        assert parse_error(start + b"\r\n" + request().split(b"\r\n", 1)[1]).status is None
    resp = parse_message(b"SIP/2.0 180\r\n" + request().split(b"\r\n", 1)[1])
    assert isinstance(resp, SipResponse) and (resp.status, resp.reason) == (180, "")


def test_value_parsers() -> None:
    assert split_list('"Doe, J" <sip:a@b>, <sip:c@d;x=1,2>, e') == ['"Doe, J" <sip:a@b>', "<sip:c@d;x=1,2>", "e"]
    assert parse_params(" ; a = 1 ;b; c=\"q;v\"") == {"a": "1", "b": None, "c": '"q;v"'}
    for bad in (";a;;b", ";a=1;A=2", ";a=", ";a b", ";=1"):
        with pytest.raises(SipParseError):
            parse_params(bad)
    uri = parse_uri("SIPS:Alice:pw@Example.COM:5061;Transport=TLS?subject=x%20y&priority=urgent")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == ("sips", "Alice", "pw", "example.com",
                                                                        5061)
    assert uri.params == {"transport": "TLS"} and uri.headers == "subject=x%20y&priority=urgent"
    tel = parse_uri("tel:+1-201-555-0123")
    assert (tel.scheme, tel.opaque, tel.is_sip) == ("tel", "+1-201-555-0123", False)
    for bad in ("sip:", "sip:a@", "sip:@h", "sip:h:70000", "sip:h;a=1;a=2", "sip:a%zz@h", "nocolon", "sip:h?x"):
        with pytest.raises(SipParseError):
            parse_uri(bad)
    na = parse_name_addr('Bob  Smith <sip:bob@example.com;lr>;tag=a1;expires=60')
    assert (na.display, na.uri.params, na.params) == ("Bob  Smith", {"lr": None}, {"tag": "a1", "expires": "60"})
    spec = parse_name_addr("sip:bob@example.com;tag=z")
    assert spec.display is None and spec.uri.params == {} and spec.tag == "z"


def test_split_multipart() -> None:
    body = (b"--b1\r\nContent-Type: application/sdp\r\n\r\n" + SDP + b"\r\n--b1\r\n"
            b"Content-Type: application/isup\r\n\r\n\x00\x01\r\n--b1--\r\n")
    parts = split_multipart('multipart/mixed; boundary="b1"', body)
    assert [(h.get("Content-Type"), b) for h, b in parts] == [("application/sdp", SDP),
                                                              ("application/isup", b"\x00\x01")]
    for ctype, bad in (("multipart/mixed", body), ("multipart/mixed;boundary=zz", body),
                       ("multipart/mixed;boundary=b1", body[:-10])):
        with pytest.raises(SipParseError):
            split_multipart(ctype, bad)


# ----------------------------------------------------------------------------------------------- validate

METHODS = {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE", "REFER", "NOTIFY"}
TYPES = {"application/sdp", "multipart/mixed", "application/dtmf-relay", "application/dtmf", "message/sipfrag"}


def verdict(data: bytes) -> tuple[int, list[tuple[str, str]]] | None:
    req = parse_message(data)
    assert isinstance(req, SipRequest)
    rejection = check_request(req, supported_methods=METHODS, supported_extensions={"replaces"},
                              accepted_content_types=TYPES)
    return None if rejection is None else (rejection.status, rejection.extra_headers)


def sdp_invite(*extra: str, body: bytes = SDP, ctype: str = "application/sdp") -> bytes:
    return request(extra=(f"Content-Type: {ctype}", *extra), body=body)


def test_check_request_accepts_a_plain_invite_and_tel_uri() -> None:
    assert verdict(sdp_invite()) is None
    assert verdict(request(uri="tel:+15551234")) is None
    assert verdict(request(extra=("Max-Forwards: 0",)).replace(b"Max-Forwards: 70\r\n", b"")) is None
    assert verdict(sdp_invite("Proxy-Require: foo", "Require: replaces")) is None
    assert verdict(sdp_invite("Accept: application/*, text/html")) is None


def test_check_request_methods() -> None:
    allow = ("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, REFER, NOTIFY")
    for method in ("REGISTER", "PUBLISH", "SUBSCRIBE", "MESSAGE"):
        assert verdict(request(method=method)) == (405, [allow])
    assert verdict(request(method="FOO")) == (501, [allow])


def test_check_request_require_and_uri() -> None:
    assert verdict(request(extra=("Require: 100rel, replaces, foo, 100rel",))) == (
        420, [("Unsupported", "100rel, foo")])
    assert verdict(request(method="CANCEL", extra=("Require: foo",))) is None  # ignored in CANCEL
    assert verdict(request(uri="mailto:a@b.example")) == (416, [])
    assert verdict(request(uri="sip:bot@example.com?Subject=hi")) == (400, [])


def test_check_request_bodies() -> None:
    sdp_types = [("Accept", "application/sdp, multipart/mixed")]
    assert verdict(sdp_invite(ctype="text/html", body=b"<p>")) == (415, sdp_types)
    assert verdict(sdp_invite("Content-Encoding: gzip")) == (415, [("Accept-Encoding", "identity")])
    assert verdict(request(body=b"x")) == (400, [])  # body without Content-Type
    assert verdict(sdp_invite("Content-Disposition: render;handling=optional", ctype="text/html")) is None
    multipart = (b"--xx\r\nContent-Type: application/sdp\r\n\r\n" + SDP + b"\r\n--xx\r\n"
                 b"Content-Type: application/isup\r\n\r\nabc\r\n--xx--\r\n")
    assert verdict(sdp_invite(ctype="multipart/mixed;boundary=xx", body=multipart)) is None
    no_sdp = multipart.replace(b"application/sdp", b"text/plain")
    assert verdict(sdp_invite(ctype="multipart/mixed;boundary=xx", body=no_sdp)) == (415, sdp_types)
    info = request(method="INFO", extra=("Content-Type: application/dtmf-relay",), body=b"Signal=5\r\n")
    assert verdict(info) is None
    assert verdict(info.replace(b"application/dtmf-relay", b"text/plain")) == (
        415, [("Accept", "application/dtmf, application/dtmf-relay")])
    notify = request(method="NOTIFY", extra=("Content-Type: message/sipfrag",), body=b"SIP/2.0 200 OK")
    assert verdict(notify) is None


def test_check_request_accept_and_ack() -> None:
    assert verdict(sdp_invite("Accept: application/sdp;q=0")) == (406, [])
    assert verdict(sdp_invite("Accept: text/plain")) == (406, [])
    assert verdict(request(method="OPTIONS", extra=("Accept: text/plain",))) is None
    assert verdict(request(method="ACK", extra=("Require: foo",))) is None  # nothing to answer in ACK
    assert verdict(request(method="ACK", extra=("Content-Type: text/html",), body=b"x")) == (
        415, [("Accept", "application/sdp, multipart/mixed")])


# ----------------------------------------------------------------------------------------------- responses


def test_build_response_copies_transaction_headers() -> None:
    req = parse_message(request(extra=("Via: SIP/2.0/TCP p.example.com;branch=z9hG4bKp",
                                       "Record-Route: <sip:p.example.com;lr>", "Timestamp: 54")))
    assert isinstance(req, SipRequest)
    ok = build_response(req, 200, "", extra_headers=[("Contact", "<sip:bot@192.0.2.9>")], to_tag="t1")
    assert ok is not None and ok.reason == "OK"
    assert list(ok.headers) == [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9;rport"),
        ("Via", "SIP/2.0/TCP p.example.com;branch=z9hG4bKp"),
        ("From", "Alice <sip:alice@example.com>;tag=9fxced76sl"), ("To", "<sip:bot@example.com>;tag=t1"),
        ("Call-ID", "3848276298220188511@example.com"), ("CSeq", "1 INVITE"),
        ("Record-Route", "<sip:p.example.com;lr>"), ("Contact", "<sip:bot@192.0.2.9>")]
    trying = build_response(req, 100, "")
    assert trying is not None and trying.headers.get("To") == "<sip:bot@example.com>"
    assert trying.headers.get("Timestamp") == "54"
    busy = build_response(req, 486, "Busy Here")
    assert busy is not None and "Record-Route" not in busy.headers
    assert (busy.to.tag or "") != "" and busy.to.tag != "t1"
    again = parse_message(busy.serialize())
    assert isinstance(again, SipResponse) and (again.status, again.call_id) == (486, req.call_id)


def test_build_response_keeps_existing_tag_and_needs_headers() -> None:
    req = parse_message(request().replace(b"To: <sip:bot@example.com>", b"To: <sip:bot@example.com>;tag=abc"))
    resp = build_response(req, 200, "OK", to_tag="zzz")
    assert resp is not None and resp.to.tag == "abc"
    headers = Headers([("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"), ("From", "<sip:a@b>;tag=1"),
                       ("To", "<sip:c@d>"), ("CSeq", "1 OPTIONS")])
    no_call_id = build_response(headers, 400, "")  # still routable through its Via: answered without a Call-ID
    assert no_call_id is not None and no_call_id.headers.get("Call-ID") is None and no_call_id.to.tag
    assert build_response(Headers([("From", "<sip:a@b>;tag=1"), ("Call-ID", "x@y")]), 400, "") is None  # no Via
    headers.add("Call-ID", "x@y")
    resp = build_response(headers, 400, "Bad Request (why)", to_tag="q")
    assert resp is not None and resp.reason == "Bad Request (why)" and resp.to.tag == "q"
    assert build_response(None, 400, "") is None


def test_default_reason() -> None:
    assert default_reason(486) == "Busy Here" and default_reason(513) == "Message Too Large"
    assert default_reason(299) == "Success" and default_reason(499) == "Client Error"
    with pytest.raises(ValueError):
        default_reason(42)
