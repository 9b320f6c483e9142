"""SDP parsing, serialisation and offer/answer against offers captured from real peers (PJSIP, sipp, baresip)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebot.sip.sdp import (
    Codec,
    NoCommonCodec,
    SdpError,
    apply_answer,
    build_offer,
    increment_version,
    negotiate,
    parse_sdp,
    with_direction,
)

from tests.sip.torture import TORTURE_DIR, torture_files


def crlf(text: str) -> str:
    return "".join(line.strip() + "\r\n" for line in text.strip().splitlines())


# Offers below were captured from the real peers on loopback (pjsua2-python 2.15.1 with default settings,
# sipp -sn uac, baresip 1.0.0), verbatim.
# pjsua: many codecs, telephone-event at 16 kHz (120), 8 kHz (121) and 32 kHz (122).
PJSUA_OFFER = crlf(
    """
    v=0
    o=- 4004554520 4004554520 IN IP4 192.0.2.2
    s=pjmedia
    b=AS:84
    t=0 0
    a=X-nat:0
    m=audio 4000 RTP/AVP 96 97 98 99 3 0 8 9 120 121 122
    c=IN IP4 192.0.2.2
    b=TIAS:64000
    a=rtcp:4001 IN IP4 192.0.2.2
    a=sendrecv
    a=rtpmap:96 speex/16000
    a=rtpmap:97 speex/8000
    a=rtpmap:98 speex/32000
    a=rtpmap:99 iLBC/8000
    a=fmtp:99 mode=30
    a=rtpmap:3 GSM/8000
    a=rtpmap:0 PCMU/8000
    a=rtpmap:8 PCMA/8000
    a=rtpmap:9 G722/8000
    a=rtpmap:120 telephone-event/16000
    a=fmtp:120 0-16
    a=rtpmap:121 telephone-event/8000
    a=fmtp:121 0-16
    a=rtpmap:122 telephone-event/32000
    a=fmtp:122 0-16
    a=ssrc:1838121079 cname:5a9bd02461a0d6f0
    """
)

# sipp's built-in uac scenario: PCMU only, session-level c=.
SIPP_OFFER = crlf(
    """
    v=0
    o=user1 53655765 2353687637 IN IP4 127.0.0.1
    s=-
    c=IN IP4 127.0.0.1
    t=0 0
    m=audio 6000 RTP/AVP 0
    a=rtpmap:0 PCMU/8000
    """
)

BARESIP_OFFER = crlf(
    """
    v=0
    o=- 78964429 1531850862 IN IP4 192.0.2.2
    s=-
    c=IN IP4 192.0.2.2
    t=0 0
    a=tool:baresip 1.0.0
    m=audio 28978 RTP/AVP 0 8 101
    a=rtpmap:0 PCMU/8000
    a=rtpmap:8 PCMA/8000
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-15
    a=sendrecv
    a=label:1
    a=rtcp-rsize
    a=ssrc:1183885071 cname:sip:bot@127.0.0.1
    a=minptime:20
    a=ptime:20
    """
)

VIDEO_OFFER = crlf(
    """
    v=0
    o=linphone 1234 5678 IN IP4 192.0.2.7
    s=Talk
    c=IN IP4 192.0.2.7
    t=0 0
    m=video 9078 RTP/AVP 96 97
    a=rtpmap:96 VP8/90000
    a=rtpmap:97 H264/90000
    a=fmtp:97 profile-level-id=42801F
    m=audio 7078 RTP/AVP 8 101
    a=rtpmap:101 telephone-event/8000
    m=application 5060 UDP/BFCP *
    """
)

SRTP_ONLY_OFFER = crlf(
    """
    v=0
    o=- 1 1 IN IP4 192.0.2.9
    s=-
    c=IN IP4 192.0.2.9
    t=0 0
    m=audio 5004 RTP/SAVP 0 8 101
    a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
    a=rtpmap:101 telephone-event/8000
    """
)

G729_ONLY_OFFER = crlf(
    """
    v=0
    o=- 1 1 IN IP4 192.0.2.9
    s=-
    c=IN IP4 192.0.2.9
    t=0 0
    m=audio 5004 RTP/AVP 18 101
    a=rtpmap:18 G729/8000
    a=fmtp:18 annexb=no
    a=rtpmap:101 telephone-event/8000
    """
)


def hold_offer(direction_line: str = "", address: str = "192.0.2.50", session_attr: str = "") -> str:
    return crlf(
        f"""
        v=0
        o=- 20 21 IN IP4 192.0.2.50
        s=-
        c=IN IP4 {address}
        t=0 0
        {session_attr}
        m=audio 30000 RTP/AVP 0 101
        a=rtpmap:101 telephone-event/8000
        {direction_line}
        """
    )


def audio_of(sd):  # type: ignore[no-untyped-def]
    return next(m for m in sd.media if m.media == "audio" and m.port != 0)


# ---------------------------------------------------------------- parsing


def test_parse_pjsua_offer_structure() -> None:
    sd = parse_sdp(PJSUA_OFFER)
    assert sd.origin.session_id == 4004554520 and sd.origin.username == "-"
    assert sd.session_name == "pjmedia"
    assert sd.attribute("X-nat") == "0"
    (m,) = sd.media
    assert (m.media, m.port, m.proto) == ("audio", 4000, "RTP/AVP")
    assert m.formats[0] == "96" and m.formats[-1] == "122"
    assert m.connection is not None and m.connection.host == "192.0.2.2"
    assert [c.name for c in m.codecs()][:6] == ["speex", "speex", "speex", "iLBC", "GSM", "PCMU"]
    assert m.rtpmaps()[98] == Codec("speex", 98, 32000)
    assert m.fmtp(99) == "mode=30"
    assert m.attribute("rtcp") == "4001 IN IP4 192.0.2.2"
    assert m.direction == "sendrecv"


def test_static_payload_types_without_rtpmap() -> None:
    sd = parse_sdp("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 5000 RTP/AVP 18 8 0\r\n")
    assert [(c.name, c.payload_type, c.clock_rate) for c in sd.media[0].codecs()] == [
        ("G729", 18, 8000),
        ("PCMA", 8, 8000),
        ("PCMU", 0, 8000),
    ]
    n = negotiate(sd, "10.0.0.1", 20000)
    assert n.codec == Codec("PCMU", 0, 8000)


@pytest.mark.parametrize("offer", [PJSUA_OFFER, SIPP_OFFER, BARESIP_OFFER, VIDEO_OFFER, SRTP_ONLY_OFFER])
def test_round_trip_is_byte_exact(offer: str) -> None:
    assert parse_sdp(offer).serialize() == offer
    assert parse_sdp(offer.encode()).serialize() == offer


def test_lf_only_input_serialises_with_crlf() -> None:
    text = SIPP_OFFER.replace("\r\n", "\n")
    out = parse_sdp(text).serialize()
    assert out == SIPP_OFFER
    assert "\n" not in out.replace("\r\n", "")


def test_unknown_attributes_and_lines_are_kept() -> None:
    text = SIPP_OFFER + "a=x-custom:hello world\r\na=flag-only\r\n"
    sd = parse_sdp(text)
    assert sd.media[0].attribute("x-custom") == "hello world"
    assert sd.media[0].attribute("flag-only") == ""
    assert "a=x-custom:hello world\r\na=flag-only\r\n" in sd.serialize()


def test_lines_are_serialised_in_rfc_order() -> None:
    # c= given after t= and a session a= before b=: output puts them in RFC 8866 order
    text = "v=0\r\no=- 1 2 IN IP4 h\r\ns=-\r\nt=0 0\r\na=tool:x\r\nc=IN IP4 1.1.1.1\r\nb=AS:1\r\nm=audio 1 RTP/AVP 0"
    lines = parse_sdp(text).serialize().split("\r\n")
    assert lines[:7] == ["v=0", "o=- 1 2 IN IP4 h", "s=-", "c=IN IP4 1.1.1.1", "b=AS:1", "t=0 0", "a=tool:x"]


def test_ipv6_connection() -> None:
    text = "v=0\r\no=- 1 1 IN IP6 2001:db8::7\r\ns=-\r\nc=IN IP6 2001:db8::7\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8\r\n"
    n = negotiate(parse_sdp(text), "::1", 40000)
    assert (n.remote_host, n.remote_port) == ("2001:db8::7", 7000)
    assert n.answer.connection is not None and n.answer.connection.addr_type == "IP6"
    assert "c=IN IP6 ::1\r\n" in n.answer.serialize()
    assert "o=voicebot " in n.answer.serialize() and " IN IP6 ::1\r\n" in n.answer.serialize()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "empty SDP"),
        ("\r\n\r\n", "empty SDP"),
        ("o=- 1 1 IN IP4 h\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\n", "missing v= line"),
        ("v=1\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\n", "unsupported SDP version"),
        ("v=0\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n", "missing o= line"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n", "no m= line"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP\r\n", "bad m= line"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio abc RTP/AVP 0\r\n", "port 'abc' is not a number"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio -5 RTP/AVP 0\r\n", "port '-5' is not a number"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 70000 RTP/AVP 0\r\n", "out of range"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 5000/0 RTP/AVP 0\r\n", "port count"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nhello world\r\nm=audio 1 RTP/AVP 0\r\n", "line 3: expected '<letter>=<value>'"),
        ("v=0\r\no=- 1 1 IN IP4\r\nm=audio 1 RTP/AVP 0\r\n", "o= needs 6 fields"),
        ("v=0\r\no=- abc 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\n", "session id 'abc' is not a number"),
        ("v=0\r\no=- 1 x IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\n", "session version 'x' is not a number"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\no=- 2 2 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\n", "duplicate o="),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP5 h\r\nm=audio 1 RTP/AVP 0\r\n", "address type 'IP5'"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nc=ATM NSAP h\r\nm=audio 1 RTP/AVP 0\r\n", "network type 'ATM'"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4\r\nm=audio 1 RTP/AVP 0\r\n", "c= needs"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=\r\n", "bad attribute name"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\nt=0 0\r\n", "t= is a session-level line"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nv=0\r\nm=audio 1 RTP/AVP 0\r\n", "second v= line"),
        ("V=0\r\n", "line 1: expected '<letter>=<value>'"),
        (b"v=0\r\no=- 1 1 IN IP4 h\xff\r\n", "not valid UTF-8"),
        ("v=0\r\no=- \u0661 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\n", "is not a number"),
    ],
)
def test_malformed_sdp_gives_specific_error(body: str | bytes, message: str) -> None:
    with pytest.raises(SdpError, match=message) as info:
        parse_sdp(body)
    assert message in info.value.reason


def test_malformed_rtpmap_is_kept_but_not_used() -> None:
    text = SIPP_OFFER.replace("RTP/AVP 0", "RTP/AVP 0 31 8") + "a=rtpmap:31 LPC\r\na=rtpmap:8 PCMU\r\n"
    m = parse_sdp(text).media[0]
    assert m.attribute_values("rtpmap") == ["0 PCMU/8000", "31 LPC", "8 PCMU"]
    assert [c.name for c in m.codecs()] == ["PCMU", "PCMA"]  # 8 falls back to its static meaning
    assert parse_sdp(text).serialize() == text


def _sip_body(raw: bytes) -> bytes:
    head, _, body = raw.partition(b"\r\n\r\n")
    match = re.search(rb"^(?:Content-Length|l)\s*:\s*([0-9]+)\s*$", head, re.IGNORECASE | re.MULTILINE)
    if match and int(match.group(1)) <= len(body):
        return body[: int(match.group(1))]
    return body


def _torture_files_with_sdp() -> list[Path]:
    """Messages whose own body (per Content-Length) is SDP; dblreq.dat's trailing INVITE is not a body."""
    return [p for p in torture_files() if _sip_body(p.read_bytes()).startswith(b"v=0")]


@pytest.mark.parametrize("path", _torture_files_with_sdp(), ids=lambda p: p.name)
def test_rfc4475_torture_message_bodies_parse_and_negotiate(path: Path) -> None:
    # RFC 4475 tortures SIP headers; the SDP bodies (with "a=rtpmap:31 LPC") are valid and must be answerable.
    n = negotiate(parse_sdp(_sip_body(path.read_bytes())), "10.0.0.1", 20000)
    assert n.codec.name == "PCMU"
    assert n.remote_port > 0 and n.remote_host


def test_rfc4475_corpus_is_present() -> None:
    assert len(_torture_files_with_sdp()) >= 15, f"RFC 4475 messages expected under {TORTURE_DIR}"


# ---------------------------------------------------------------- answering offers


def test_answer_pjsua_offer_prefers_our_order_and_8k_telephone_event() -> None:
    n = negotiate(parse_sdp(PJSUA_OFFER), "10.0.0.1", 20000, session_id=42)
    assert n.codec == Codec("PCMU", 0, 8000)
    assert n.dtmf_payload_type == 121  # the 8 kHz event, not the 16 kHz (120) or 32 kHz (122) one
    assert (n.remote_host, n.remote_port) == ("192.0.2.2", 4000)
    assert (n.direction, n.on_hold) == ("sendrecv", False)
    m = n.answer.media[0]
    assert (m.port, m.proto, m.formats) == (20000, "RTP/AVP", ["0", "121"])
    assert m.attribute_values("rtpmap") == ["0 PCMU/8000", "121 telephone-event/8000"]
    assert m.fmtp(121) == "0-16"
    assert m.direction == "sendrecv"
    assert n.answer.origin.session_id == 42
    assert n.answer.connection is not None and n.answer.connection.host == "10.0.0.1"


def test_answer_follows_our_preference_not_the_offerers() -> None:
    offer = parse_sdp(BARESIP_OFFER)  # offers PCMU before PCMA
    assert negotiate(offer, "10.0.0.1", 20000).codec.name == "PCMU"
    n = negotiate(offer, "10.0.0.1", 20000, preference=["PCMA", "PCMU"])
    assert n.codec == Codec("PCMA", 8, 8000)
    assert n.answer.media[0].formats == ["8", "101"]
    assert n.dtmf_payload_type == 101
    assert n.ptime_ms == 20
    g722 = negotiate(parse_sdp(PJSUA_OFFER), "10.0.0.1", 20000, preference=["G722", "PCMU"])
    assert g722.codec == Codec("G722", 9, 8000) and g722.dtmf_payload_type == 121


def test_answer_sipp_pcmu_only_without_dtmf() -> None:
    n = negotiate(parse_sdp(SIPP_OFFER), "127.0.0.1", 20002, preference=["PCMA", "PCMU"])
    assert n.codec.name == "PCMU" and n.dtmf_payload_type is None
    assert n.answer.media[0].formats == ["0"]
    assert "telephone-event" not in n.answer.serialize()
    assert (n.remote_host, n.remote_port) == ("127.0.0.1", 6000)


def test_dtmf_payload_type_follows_the_offerer() -> None:
    offer = SIPP_OFFER.replace("RTP/AVP 0", "RTP/AVP 0 126") + "a=rtpmap:126 telephone-event/8000\r\n"
    n = negotiate(parse_sdp(offer), "127.0.0.1", 20002)
    assert n.dtmf_payload_type == 126
    assert n.answer.media[0].formats == ["0", "126"]


def test_telephone_event_not_listed_in_m_line_is_ignored() -> None:
    offer = SIPP_OFFER + "a=rtpmap:101 telephone-event/8000\r\n"
    assert negotiate(parse_sdp(offer), "127.0.0.1", 20002).dtmf_payload_type is None


def test_video_and_other_streams_rejected_with_port_zero() -> None:
    offer = parse_sdp(VIDEO_OFFER)
    n = negotiate(offer, "10.0.0.1", 20000)
    assert [m.media for m in n.answer.media] == ["video", "audio", "application"]
    video, audio, app = n.answer.media
    assert video.port == 0 and video.formats == ["96", "97"] and video.attributes == []
    assert app.port == 0 and app.proto == "UDP/BFCP"
    assert audio.port == 20000 and audio.formats == ["8", "101"]
    assert n.codec.name == "PCMA" and n.media_index == 1
    assert (n.remote_host, n.remote_port) == ("192.0.2.7", 7078)
    # the answer re-parses and lines up m-line by m-line
    assert [m.port for m in parse_sdp(n.answer.serialize()).media] == [0, 20000, 0]


def test_second_audio_stream_is_rejected() -> None:
    offer = SIPP_OFFER + "m=audio 6002 RTP/AVP 8\r\n"
    n = negotiate(parse_sdp(offer), "127.0.0.1", 20002)
    assert [m.port for m in n.answer.media] == [20002, 0]


def test_srtp_only_offer_is_refused_with_clear_reason() -> None:
    with pytest.raises(NoCommonCodec, match="SRTP") as info:
        negotiate(parse_sdp(SRTP_ONLY_OFFER), "10.0.0.1", 20000)
    assert isinstance(info.value, SdpError)


def test_webrtc_savpf_offer_is_refused_as_srtp() -> None:
    offer = SRTP_ONLY_OFFER.replace("RTP/SAVP", "UDP/TLS/RTP/SAVPF")
    with pytest.raises(NoCommonCodec, match="SRTP"):
        negotiate(parse_sdp(offer), "10.0.0.1", 20000)


def test_srtp_with_plain_alternative_accepts_the_plain_stream() -> None:
    offer = SRTP_ONLY_OFFER + "m=audio 5006 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    n = negotiate(parse_sdp(offer), "10.0.0.1", 20000)
    assert [m.port for m in n.answer.media] == [0, 20000]
    assert n.answer.media[0].proto == "RTP/SAVP"
    assert n.remote_port == 5006 and n.dtmf_payload_type == 101


def test_g729_only_offer_raises_no_common_codec() -> None:
    with pytest.raises(NoCommonCodec, match="no common audio codec.*G729"):
        negotiate(parse_sdp(G729_ONLY_OFFER), "10.0.0.1", 20000)


def test_video_only_offer_raises_no_common_codec() -> None:
    offer = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 1.1.1.1\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n"
    with pytest.raises(NoCommonCodec, match="no active audio stream.*video"):
        negotiate(parse_sdp(offer), "10.0.0.1", 20000)


def test_rtpmap_overrides_static_meaning() -> None:
    # PT 0 remapped to a codec we do not know: we must not treat it as PCMU
    offer = SIPP_OFFER.replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:0 L16/16000")
    with pytest.raises(NoCommonCodec):
        negotiate(parse_sdp(offer), "10.0.0.1", 20000)


def test_missing_connection_address_is_an_error() -> None:
    offer = SIPP_OFFER.replace("c=IN IP4 127.0.0.1\r\n", "")
    with pytest.raises(SdpError, match="no connection address"):
        negotiate(parse_sdp(offer), "10.0.0.1", 20000)


def test_media_level_connection_wins_over_session_level() -> None:
    offer = SIPP_OFFER + "c=IN IP4 198.51.100.3\r\n"
    assert negotiate(parse_sdp(offer), "10.0.0.1", 20000).remote_host == "198.51.100.3"


@pytest.mark.parametrize(
    ("direction_line", "answer_direction", "on_hold"),
    [
        ("", "sendrecv", False),
        ("a=sendrecv", "sendrecv", False),
        ("a=sendonly", "recvonly", True),
        ("a=recvonly", "sendonly", False),
        ("a=inactive", "inactive", True),
    ],
)
def test_direction_mirroring(direction_line: str, answer_direction: str, on_hold: bool) -> None:
    n = negotiate(parse_sdp(hold_offer(direction_line)), "10.0.0.1", 20000)
    assert n.direction == answer_direction
    assert n.answer.media[0].direction == answer_direction
    assert n.on_hold is on_hold


def test_session_level_direction_is_inherited() -> None:
    n = negotiate(parse_sdp(hold_offer(session_attr="a=sendonly")), "10.0.0.1", 20000)
    assert (n.direction, n.on_hold) == ("recvonly", True)


def test_old_style_hold_with_null_address() -> None:
    n = negotiate(parse_sdp(hold_offer(address="0.0.0.0")), "10.0.0.1", 20000)
    assert n.on_hold is True
    assert n.direction == "recvonly"  # nowhere to send to
    assert n.answer.media[0].direction == "recvonly"
    # the holder may still send (music on hold) from a null address: we keep receiving
    n = negotiate(parse_sdp(hold_offer("a=sendonly", address="0.0.0.0")), "10.0.0.1", 20000)
    assert n.direction == "recvonly"
    n = negotiate(parse_sdp(hold_offer("a=recvonly", address="0.0.0.0")), "10.0.0.1", 20000)
    assert (n.direction, n.on_hold) == ("inactive", True)


def test_negotiate_rejects_bad_arguments() -> None:
    offer = parse_sdp(SIPP_OFFER)
    with pytest.raises(ValueError, match="unknown codec 'OPUS'"):
        negotiate(offer, "10.0.0.1", 20000, preference=["OPUS"])
    with pytest.raises(ValueError, match="port"):
        negotiate(offer, "10.0.0.1", 0)


# ---------------------------------------------------------------- we are the offerer


def test_build_offer_shape() -> None:
    sd = build_offer("10.0.0.1", 30000, session_id=7)
    text = sd.serialize()
    assert text.startswith("v=0\r\no=voicebot 7 7 IN IP4 10.0.0.1\r\ns=voicebot\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n")
    m = parse_sdp(text).media[0]
    assert (m.port, m.proto, m.formats) == (30000, "RTP/AVP", ["0", "8", "101"])
    assert [c.name for c in m.codecs()] == ["PCMU", "PCMA", "telephone-event"]
    assert m.fmtp(101) == "0-16" and m.attribute("ptime") == "20" and m.direction == "sendrecv"


def test_build_offer_options_and_validation() -> None:
    sd = build_offer("::1", 30000, codecs=["PCMA"], dtmf_payload_type=None, direction="sendonly")
    assert sd.connection is not None and sd.connection.addr_type == "IP6"
    assert sd.media[0].formats == ["8"] and sd.media[0].direction == "sendonly"
    with pytest.raises(ValueError, match="dynamic payload type"):
        build_offer("10.0.0.1", 30000, dtmf_payload_type=8)
    with pytest.raises(ValueError, match="direction"):
        build_offer("10.0.0.1", 30000, direction="both")
    with pytest.raises(ValueError, match="unknown codec"):
        build_offer("10.0.0.1", 30000, codecs=["G729"])
    with pytest.raises(ValueError, match="at least one codec"):
        build_offer("10.0.0.1", 30000, codecs=[])


def test_apply_answer_from_pjsua_style_answer() -> None:
    offer = build_offer("10.0.0.1", 30000, session_id=7)
    answer = parse_sdp(
        crlf(
            """
            v=0
            o=- 3895310300 3895310301 IN IP4 192.168.1.20
            s=pjmedia
            t=0 0
            m=audio 4002 RTP/AVP 8 101
            c=IN IP4 192.168.1.20
            a=rtpmap:8 PCMA/8000
            a=rtpmap:101 telephone-event/8000
            a=fmtp:101 0-16
            a=sendrecv
            """
        )
    )
    n = apply_answer(offer, answer)
    assert n.codec == Codec("PCMA", 8, 8000)
    assert (n.dtmf_payload_type, n.remote_host, n.remote_port) == (101, "192.168.1.20", 4002)
    assert (n.direction, n.on_hold) == ("sendrecv", False)
    assert n.answer is answer


def test_apply_answer_with_static_pt_and_no_rtpmap() -> None:
    offer = build_offer("10.0.0.1", 30000)
    answer = parse_sdp("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 9000 RTP/AVP 0 101")
    n = apply_answer(offer, answer)
    assert n.codec.name == "PCMU" and n.dtmf_payload_type == 101


def test_apply_answer_our_hold_reoffer() -> None:
    offer = increment_version(with_direction(build_offer("10.0.0.1", 30000, session_id=5), "sendonly"))
    remote = negotiate(offer, "192.0.2.1", 9000)  # a peer answering our hold offer
    assert remote.answer.media[0].direction == "recvonly"
    n = apply_answer(offer, parse_sdp(remote.answer.serialize()))
    assert (n.direction, n.on_hold) == ("sendonly", False)


def test_apply_answer_when_peer_holds_us() -> None:
    offer = build_offer("10.0.0.1", 30000)
    answer = parse_sdp(hold_offer("a=inactive"))
    n = apply_answer(offer, answer)
    assert (n.direction, n.on_hold) == ("inactive", True)


def test_apply_answer_errors() -> None:
    offer = build_offer("10.0.0.1", 30000)
    rejected = parse_sdp("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 1.1.1.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n")
    with pytest.raises(NoCommonCodec, match="rejected our audio stream"):
        apply_answer(offer, rejected)
    two = parse_sdp(SIPP_OFFER + "m=video 0 RTP/AVP 96\r\n")
    with pytest.raises(SdpError, match="2 m= lines but the offer had 1"):
        apply_answer(offer, two)
    foreign = parse_sdp(G729_ONLY_OFFER)
    with pytest.raises(NoCommonCodec, match="no codec we offered"):
        apply_answer(offer, foreign)
    remapped = parse_sdp(SIPP_OFFER.replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:0 PCMA/8000"))
    with pytest.raises(SdpError, match="maps payload type 0 to PCMA"):
        apply_answer(offer, remapped)


def test_our_offer_answered_by_our_answerer() -> None:
    offer = build_offer("10.0.0.1", 30000, codecs=["PCMA", "PCMU"])
    answered = negotiate(parse_sdp(offer.serialize()), "10.0.0.2", 40000, preference=["PCMU", "PCMA"])
    n = apply_answer(offer, parse_sdp(answered.answer.serialize()))
    assert n.codec == answered.codec == Codec("PCMU", 0, 8000)
    assert (n.remote_host, n.remote_port) == ("10.0.0.2", 40000)
    assert n.dtmf_payload_type == answered.dtmf_payload_type == 101


def test_increment_version_and_with_direction_are_pure() -> None:
    sd = build_offer("10.0.0.1", 30000, session_id=9)
    bumped = increment_version(sd)
    assert bumped.origin.session_version == sd.origin.session_version + 1
    assert bumped.origin.session_id == sd.origin.session_id
    assert sd.origin.session_version == 9
    held = with_direction(sd, "inactive")
    assert held.media[0].direction == "inactive" and sd.media[0].direction == "sendrecv"
    assert held.media[0].attribute_values("inactive") == [""]
    assert "a=sendrecv" not in held.serialize()


# ---------------------------------------------------------------- fuzzing


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_parse_arbitrary_input_raises_only_sdp_error(body: str | bytes) -> None:
    with contextlib.suppress(SdpError):
        parse_sdp(body)


_LINE_VALUES = st.text(alphabet=st.characters(blacklist_characters="\r\n"), max_size=30)
_FIELDS = st.sampled_from(["0", "8", "101", "abc", "IN", "IP4", "IP6", "RTP/AVP", "audio", "-", "0.0.0.0", "x/1"])


@st.composite
def sdp_like(draw: st.DrawFn) -> str:
    lines = ["v=0", "o=- 1 1 IN IP4 h"]
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from("mcabtsoik"))
        value = draw(st.one_of(_LINE_VALUES, st.lists(_FIELDS, max_size=6).map(" ".join)))
        if kind == "a" and draw(st.booleans()):
            value = draw(st.sampled_from(["rtpmap:", "sendonly", "ptime:", "fmtp:"])) + value
        lines.append(f"{kind}={value}")
    return "\r\n".join(lines)


@settings(max_examples=300, deadline=None)
@given(sdp_like())
def test_structured_fuzz_parse_and_negotiate_raise_only_sdp_error(text: str) -> None:
    try:
        sd = parse_sdp(text)
    except SdpError:
        return
    assert parse_sdp(sd.serialize()).serialize() == sd.serialize()  # canonical form is stable
    try:
        n = negotiate(sd, "10.0.0.1", 20000)
    except SdpError:
        return
    assert n.codec.name in ("PCMU", "PCMA")
    assert len(n.answer.media) == len(sd.media)


@pytest.mark.parametrize(
    ("address_line", "message"),
    [
        ("IN IP4 999.1.2.3", "c= address '999.1.2.3' is not a valid IP4 address"),
        ("IN IP4 1.2.3", "not a valid IP4 address"),
        ("IN IP4 2001:db8::1", "not a valid IP4 address"),
        ("IN IP6 192.0.2.1", "not a valid IP6 address"),
        ("IN IP4 bad_host!", "not a valid IP4 address"),
    ],
)
def test_invalid_connection_address_is_refused(address_line: str, message: str) -> None:
    with pytest.raises(SdpError, match=message):
        parse_sdp(f"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc={address_line}\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n")


@pytest.mark.parametrize("address", ["0.0.0.0", "224.2.1.1/127", "media.example.com", "192.0.2.7"])
def test_valid_ip4_connection_addresses_parse(address: str) -> None:
    sd = parse_sdp(f"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 {address}\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n")
    assert sd.connection is not None and sd.connection.address == address
