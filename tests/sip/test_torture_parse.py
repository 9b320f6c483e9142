"""RFC 4475 torture messages: the exact verdict of parser + UAS checks for every message, plus details.

Verdicts (RFC 4475 text; where the RFC allows a choice, the choice is named):
* §3.1.1 valid messages parse; their UAS verdict follows from the method / body (intmeth and esc02 carry
  unknown methods → 501; REGISTER-based ones → 405 since voicebot is no registrar).
* §3.1.2 invalid requests → 400 (505 for SIP/7.0); invalid responses are dropped (None).
  mismatch02: RFC allows 400 or 501 — we answer 400 (the CSeq mismatch is a parse error).
  escruri: parses, rejected 400 by check_request (escaped headers in a Request-URI).
* §3.2.1 badbranch: the RFC allows 400 or RFC 2543 fallback — we answer 400 (a bare magic cookie would
  match unrelated requests to one transaction).
* §3.3.1 insuf: no From/To/Call-ID; the Via routes a response, so it gets the 400 the RFC calls ideal (without
  the headers it lacks).
"""

from __future__ import annotations

import pytest

from voicebot.sip.headers import SipParseError
from voicebot.sip.message import SipRequest, SipResponse
from voicebot.sip.parser import parse_message
from voicebot.sip.uri import parse_name_addr, parse_uri
from voicebot.sip.fields import parse_via
from voicebot.sip.parser import split_multipart
from voicebot.sip.validate import build_response, check_request, usable_credentials

from tests.sip.torture import TORTURE_DIR


UAS_METHODS = {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE", "REFER", "NOTIFY", "MESSAGE", "PRACK"}
UAS_EXTENSIONS = {"replaces", "100rel", "timer"}
UAS_TYPES = {"application/sdp", "multipart/mixed", "application/dtmf-relay", "application/dtmf", "text/plain",
             "message/sipfrag"}

OK = "ok"          # parses; second item: check_request status (None = process normally); responses: None
ERROR = "error"    # SipParseError; second item: its status (None = drop silently)

VERDICTS: dict[str, tuple[str, int | None]] = {
    # 3.1.1 valid messages
    "wsinv.dat": (OK, None), "intmeth.dat": (OK, 501), "esc01.dat": (OK, None), "escnull.dat": (OK, 405),
    "esc02.dat": (OK, 501), "lwsdisp.dat": (OK, None), "longreq.dat": (OK, None), "dblreq.dat": (OK, 405),
    "semiuri.dat": (OK, None), "transports.dat": (OK, None), "mpart01.dat": (OK, 415),
    "unreason.dat": (OK, None), "noreason.dat": (OK, None),
    # 3.1.2 invalid messages
    "badinv01.dat": (ERROR, 400), "clerr.dat": (ERROR, 400), "ncl.dat": (ERROR, 400),
    "scalar02.dat": (ERROR, 400), "scalarlg.dat": (ERROR, None), "quotbal.dat": (ERROR, 400),
    "ltgtruri.dat": (ERROR, 400), "lwsruri.dat": (ERROR, 400), "lwsstart.dat": (ERROR, 400),
    "trws.dat": (ERROR, 400), "escruri.dat": (OK, 400), "baddate.dat": (ERROR, 400),
    "regbadct.dat": (ERROR, 400), "badaspec.dat": (ERROR, 400), "baddn.dat": (ERROR, 400),
    "badvers.dat": (ERROR, 505), "mismatch01.dat": (ERROR, 400), "mismatch02.dat": (ERROR, 400),
    "bigcode.dat": (ERROR, None),
    # 3.2 transaction layer
    "badbranch.dat": (ERROR, 400),
    # 3.3 application layer
    "insuf.dat": (ERROR, 400), "unkscm.dat": (OK, 416), "novelsc.dat": (OK, 416), "unksm2.dat": (OK, 405),
    "bext01.dat": (OK, 420), "invut.dat": (OK, 415), "regaut01.dat": (OK, 405), "multi01.dat": (ERROR, 400),
    "mcl01.dat": (ERROR, 400), "bcast.dat": (OK, None), "zeromf.dat": (OK, None), "cparam01.dat": (OK, 405),
    "cparam02.dat": (OK, 405), "regescrt.dat": (OK, 405), "sdp01.dat": (OK, 406),
    # 3.4 backwards compatibility
    "inv2543.dat": (OK, None),
}

# Why each invalid message is rejected: a fragment of SipParseError.reason.
ERROR_CAUSES = {
    "badinv01.dat": "empty element in Via", "clerr.dat": "larger than", "ncl.dat": "Content-Length",
    "scalar02.dat": "CSeq number out of range", "scalarlg.dat": "CSeq number out of range",
    "quotbal.dat": "unterminated quoted", "ltgtruri.dat": "Request-URI", "lwsruri.dat": "Request-Line",
    "lwsstart.dat": "Request-Line", "trws.dat": "Request-Line", "baddate.dat": "Date",
    "regbadct.dat": "enclosed in <>", "badaspec.dat": "spaces within addr-spec", "baddn.dat": "display name",
    "badvers.dat": "version", "mismatch01.dat": "does not match", "mismatch02.dat": "does not match",
    "bigcode.dat": "Status-Line", "badbranch.dat": "branch", "insuf.dat": "missing mandatory header",
    "multi01.dat": "multiple", "mcl01.dat": "multiple Content-Length",
}


def load(name: str) -> bytes:
    return (TORTURE_DIR / name).read_bytes()


def check(req: SipRequest, methods: set[str] = UAS_METHODS):
    return check_request(req, supported_methods=methods, supported_extensions=UAS_EXTENSIONS,
                         accepted_content_types=UAS_TYPES)


def test_every_torture_file_has_a_verdict() -> None:
    load("wsinv.dat")
    on_disk = {p.name for p in TORTURE_DIR.glob("*.dat")}
    assert on_disk == set(VERDICTS), f"unlisted: {on_disk - set(VERDICTS)}, missing: {set(VERDICTS) - on_disk}"
    assert len(on_disk) == 49


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_verdict(name: str) -> None:
    data = load(name)
    kind, status = VERDICTS[name]
    if kind == ERROR:
        with pytest.raises(SipParseError) as info:
            parse_message(data)
        err = info.value
        assert err.status == status, err.reason
        assert ERROR_CAUSES[name].lower() in err.reason.lower()
        if status is not None:  # a response can really be formed and echoes the transaction identifiers
            resp = build_response(err.headers, status, "")
            assert resp is not None
            assert resp.headers.get_all("Via") == err.headers.get_all("Via")
            assert resp.headers.get("CSeq") == err.headers.get("CSeq")
            assert resp.serialize().startswith(f"SIP/2.0 {status} ".encode())
        return
    msg = parse_message(data)
    if isinstance(msg, SipResponse):
        assert status is None
        return
    rejection = check(msg)
    assert (rejection.status if rejection else None) == status, rejection


def test_wsinv_short_tortuous_invite() -> None:
    msg = parse_message(load("wsinv.dat"))
    assert isinstance(msg, SipRequest) and msg.method == "INVITE"
    assert parse_uri(msg.uri).params == {"unknownparam": None}
    assert msg.to.tag == "1918181833n" and str(msg.to.uri) == "sip:vivekg@chair-dnrc.example.com"
    assert msg.from_.tag == "98asjd8" and msg.from_.display == 'J Rosenberg \\\\\\"'
    assert int(msg.headers.get("Max-Forwards") or "") == 68
    assert msg.cseq == (9, "INVITE")
    lines = msg.headers.get_all("Via")
    assert len(lines) == 2  # "Via  :" and the folded compact "v:" line
    assert len(msg.headers.values("Via")) == 3  # the "v:" line carries 2 values after unfolding
    vias = [parse_via(v) for v in msg.headers.values("Via")]
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"), ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239")]
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert msg.headers.get("Subject") == ""
    contact = parse_name_addr(msg.headers.values("Contact")[0])
    assert contact.display == 'Quoted string \\"\\"'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert len(msg.body) == 150 and msg.body.startswith(b"v=0\r\n")


def test_intmeth_wide_range_of_valid_characters() -> None:
    msg = parse_message(load("intmeth.dat"))
    assert isinstance(msg, SipRequest)
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = parse_uri(msg.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)" and uri.host == "example.com"
    assert msg.to.display == "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f"  # quoted-pairs may escape control characters
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.from_.params["fromparam''~+*_!.-%"] == '"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439"'
    assert msg.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.cseq == (139122385, msg.method)
    assert msg.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    rejection = check(msg)
    assert rejection is not None and ("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, UPDATE, INFO, REFER, "
                                                "NOTIFY, MESSAGE") in rejection.extra_headers


def test_esc01_escapes_kept_as_received() -> None:
    msg = parse_message(load("esc01.dat"))
    uri = parse_uri(msg.uri)
    assert uri.user == "sips%3Auser%40example.com" and uri.host == "example.net"
    assert msg.to.uri.user == "%75se%72"
    assert msg.from_.uri.user == "I%20have%20spaces"
    contact = parse_name_addr(msg.headers.get("Contact") or "")
    assert contact.uri.user == "cal%6Cer"
    assert contact.uri.params == {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}


def test_escnull_and_esc02() -> None:
    escnull = parse_message(load("escnull.dat"))
    assert escnull.to.uri.user == "null-%00-null"
    assert [parse_name_addr(c).uri.user for c in escnull.headers.values("Contact")] == ["%00", "%00%00"]
    esc02 = parse_message(load("esc02.dat"))
    assert isinstance(esc02, SipRequest) and esc02.method == "RE%47IST%45R"  # not REGISTER: unknown method
    assert esc02.to.display == "%Z%45"
    assert esc02.top_via.branch == "z9hG4bK209%fzsnel234"
    assert esc02.headers.count("Contact") == 2  # "C%6Fntact" is a different, unknown header
    assert esc02.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_semiuri_transports() -> None:
    assert parse_message(load("lwsdisp.dat")).from_.display == "caller"
    semi = parse_message(load("semiuri.dat"))
    uri = parse_uri(semi.uri)
    assert (uri.user, uri.host, uri.params) == ("user;par=u%40example.net", "example.com", {})
    assert len(semi.headers.values("Accept")) == 6
    transports = parse_message(load("transports.dat"))
    assert [parse_via(v).transport for v in transports.headers.values("Via")] == [
        "UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_longreq_long_values_intact() -> None:
    msg = parse_message(load("longreq.dat"))
    vias = [parse_via(v) for v in msg.headers.values("Via")]
    assert len(vias) == 34 and vias[0].host == "sip33.example.com"
    assert vias[-1].params["received"] == "192.0.2.5"
    assert (vias[-1].branch or "").startswith("verylonglong") and len(vias[-1].branch or "") > 200
    assert msg.to.display is not None and "extremeextreme" in msg.to.display
    assert msg.to.uri.port == 6000 and "unknownparam1" in msg.to.uri.params
    assert msg.from_.uri.user is not None and len(msg.from_.uri.user) == 5 * len("amazinglylongcallername")
    assert msg.call_id.startswith("longreq.onereally") and msg.call_id.endswith("longcallid")
    long_name = "Unknown-" + "Long" * 20 + "-Name"
    assert (msg.headers.get(long_name) or "").startswith("unknown-longlong")
    assert len(msg.body) == 150


def test_dblreq_second_message_ignored() -> None:
    msg = parse_message(load("dblreq.dat"))
    assert isinstance(msg, SipRequest) and msg.method == "REGISTER"
    assert msg.body == b""
    assert msg.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


def test_mpart01_multipart_body_kept() -> None:
    data = load("mpart01.dat")
    msg = parse_message(data)
    assert len(msg.body) == 553 and msg.body == data[data.index(b"\r\n\r\n") + 4:][:553]
    parts = split_multipart(msg.headers.get("Content-Type") or "", msg.body)
    assert [h.get("Content-Type") for h, _ in parts] == ["text/plain", "application/octet-stream"]
    assert parts[0][1] == b"Hello"
    assert b"\x00" in parts[1][1]  # binary part framed by Content-Length, NULs included
    rejection = check(msg)  # MESSAGE takes text/plain only
    assert rejection is not None and rejection.extra_headers == [("Accept", "text/plain")]


def test_unusual_and_empty_reason_phrases() -> None:
    unreason = parse_message(load("unreason.dat"))
    assert isinstance(unreason, SipResponse) and unreason.status == 200
    assert unreason.reason.startswith("= 2**3 * 5**2 \u043d\u043e")
    assert len(unreason.body) == 154
    noreason = parse_message(load("noreason.dat"))
    assert isinstance(noreason, SipResponse) and (noreason.status, noreason.reason) == (100, "")


def test_insuf_is_answered_400_through_its_via() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(load("insuf.dat"))
    assert info.value.status == 400 and "missing mandatory header" in info.value.reason
    assert info.value.headers is not None and info.value.headers.get("CSeq") == "193942 INVITE"
    resp = build_response(info.value.headers, 400, "")
    assert resp is not None and resp.headers.get("Via") == "SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf"
    assert resp.headers.get("CSeq") == "193942 INVITE" and resp.headers.get("Call-ID") is None


def test_application_layer_details() -> None:
    bext = check(parse_message(load("bext01.dat")))
    assert bext is not None
    assert bext.extra_headers == [("Unsupported", "nothingSupportsThis, nothingSupportsThisEither")]
    invut = check(parse_message(load("invut.dat")))
    assert invut is not None and invut.extra_headers == [("Accept", "application/sdp, multipart/mixed")]
    unksm2 = parse_message(load("unksm2.dat"))
    assert (unksm2.to.uri.scheme, unksm2.to.uri.opaque) == ("isbn", "2983792873")
    assert parse_name_addr(unksm2.headers.get("Contact") or "").uri.scheme == "name"
    regaut = parse_message(load("regaut01.dat"))
    assert isinstance(regaut, SipRequest)
    assert usable_credentials(regaut) == []
    assert check(regaut, UAS_METHODS | {"REGISTER"}) is None  # unknown scheme = no credentials, not an error
    zeromf = parse_message(load("zeromf.dat"))
    assert zeromf.headers.get("Max-Forwards") == "0" and check(zeromf) is None
    bcast = parse_message(load("bcast.dat"))
    assert [parse_via(v).host for v in bcast.headers.values("Via")] == ["192.0.2.198", "255.255.255.255"]


def test_register_contact_forms() -> None:
    cparam01 = parse_name_addr(parse_message(load("cparam01.dat")).headers.get("Contact") or "")
    assert cparam01.params == {"unknownparam": None} and cparam01.uri.params == {}
    cparam02 = parse_name_addr(parse_message(load("cparam02.dat")).headers.get("Contact") or "")
    assert cparam02.params == {} and cparam02.uri.params == {"unknownparam": None}
    regescrt = parse_name_addr(parse_message(load("regescrt.dat")).headers.get("Contact") or "")
    assert regescrt.uri.headers == "Route=%3Csip:sip.example.com%3E"


def test_inv2543_rfc2543_syntax_accepted() -> None:
    data = load("inv2543.dat")
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    assert msg.top_via.branch is None and msg.from_.tag is None
    assert "Max-Forwards" not in msg.headers and "Content-Length" not in msg.headers
    assert msg.body == data[data.index(b"\r\n\r\n") + 4:]  # no Content-Length: the rest of the datagram
    assert msg.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")


@pytest.mark.parametrize("name", sorted(n for n, (kind, _) in VERDICTS.items() if kind == OK))
def test_valid_messages_round_trip(name: str) -> None:
    msg = parse_message(load(name))
    again = parse_message(msg.serialize())
    if "Content-Length" in msg.headers:
        assert again == msg
    else:  # serialising adds the Content-Length a datagram may omit, at the end
        assert list(again.headers)[:-1] == list(msg.headers)
        assert list(again.headers)[-1] == ("Content-Length", str(len(msg.body)))
        assert again.body == msg.body
    assert again.serialize() == msg.serialize()
