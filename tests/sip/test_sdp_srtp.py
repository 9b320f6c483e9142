"""SDP offer/answer with SDES SRTP: policy none/optional/required, best-effort offers, rekeying, our offers."""

from __future__ import annotations

import pytest

from voicebot.sip.sdes import parse_crypto
from voicebot.sip.sdp import NoCommonCodec, SdpError, apply_answer, build_offer, negotiate, parse_sdp

KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
NEW_KEY = "QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5"


def offer(proto: str = "RTP/SAVP", crypto: tuple[str, ...] = (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}",)) -> str:
    lines = ["v=0", "o=- 1 1 IN IP4 192.0.2.9", "s=-", "c=IN IP4 192.0.2.9", "t=0 0",
             f"m=audio 5004 {proto} 0 8 101", "a=rtpmap:101 telephone-event/8000",
             *(f"a=crypto:{c}" for c in crypto)]
    return "\r\n".join(lines) + "\r\n"


def test_savp_offer_is_answered_with_our_own_key_and_its_tag() -> None:
    sdp = offer(crypto=("1 AES_256_CM_HMAC_SHA1_80 inline:" + "A" * 62 + "==",
                        f"3 AES_CM_128_HMAC_SHA1_32 inline:{KEY}", f"4 AES_CM_128_HMAC_SHA1_80 inline:{NEW_KEY}"))
    n = negotiate(parse_sdp(sdp), "10.0.0.1", 20000, encryption="optional")
    audio = n.answer.media[0]
    assert audio.proto == "RTP/SAVP"
    lines = audio.attribute_values("crypto")
    assert len(lines) == 1
    answered = parse_crypto(lines[0])
    assert (answered.tag, answered.suite) == (3, "AES_CM_128_HMAC_SHA1_32")  # first usable line, its tag
    assert n.srtp is not None and n.srtp.remote_key == parse_crypto(f"3 X inline:{KEY}").key
    assert n.srtp.local_key == answered.key and n.srtp.local_key != n.srtp.remote_key
    assert KEY not in repr(n.srtp) and "local_key" not in repr(n.srtp)


def test_required_accepts_srtp_and_refuses_plain() -> None:
    assert negotiate(parse_sdp(offer()), "10.0.0.1", 20000, encryption="required").srtp is not None
    with pytest.raises(NoCommonCodec, match="required.*no usable a=crypto"):
        negotiate(parse_sdp(offer("RTP/AVP", ())), "10.0.0.1", 20000, encryption="required")
    with pytest.raises(NoCommonCodec, match="MKI"):
        negotiate(parse_sdp(offer(crypto=(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4",))), "10.0.0.1",
                  20000, encryption="required")


def test_optional_falls_back_to_plain_rtp() -> None:
    n = negotiate(parse_sdp(offer("RTP/AVP", ())), "10.0.0.1", 20000, encryption="optional")
    assert n.srtp is None and n.answer.media[0].proto == "RTP/AVP"
    assert n.answer.media[0].attribute_values("crypto") == []


def test_best_effort_avp_offer_with_crypto_gets_srtp_unless_policy_is_none() -> None:
    sdp = parse_sdp(offer("RTP/AVP"))
    n = negotiate(sdp, "10.0.0.1", 20000, encryption="optional")
    assert n.srtp is not None and n.answer.media[0].proto == "RTP/AVP"
    assert len(n.answer.media[0].attribute_values("crypto")) == 1
    plain = negotiate(sdp, "10.0.0.1", 20000, encryption="none")
    assert plain.srtp is None and plain.answer.media[0].attribute_values("crypto") == []


def test_policy_none_refuses_savp() -> None:
    with pytest.raises(NoCommonCodec, match="requires SRTP.*none"):
        negotiate(parse_sdp(offer()), "10.0.0.1", 20000, encryption="none")


def test_savp_without_crypto_is_refused_with_reason() -> None:
    with pytest.raises(NoCommonCodec, match="no a=crypto line"):
        negotiate(parse_sdp(offer(crypto=())), "10.0.0.1", 20000, encryption="optional")


def test_reoffer_with_same_key_keeps_ours_and_new_key_rekeys_both() -> None:
    first = negotiate(parse_sdp(offer()), "10.0.0.1", 20000, encryption="optional")
    same = negotiate(parse_sdp(offer()), "10.0.0.1", 20000, encryption="optional", current_srtp=first.srtp)
    assert same.srtp == first.srtp
    rekey = negotiate(parse_sdp(offer(crypto=(f"1 AES_CM_128_HMAC_SHA1_80 inline:{NEW_KEY}",))), "10.0.0.1",
                      20000, encryption="optional", current_srtp=first.srtp)
    assert rekey.srtp is not None and first.srtp is not None
    assert rekey.srtp.remote_key != first.srtp.remote_key and rekey.srtp.local_key != first.srtp.local_key


@pytest.mark.parametrize("encryption,proto,lines", [("none", "RTP/AVP", 0), ("optional", "RTP/AVP", 2),
                                                    ("required", "RTP/SAVP", 2)])
def test_our_offers_follow_the_policy(encryption: str, proto: str, lines: int) -> None:
    sd = build_offer("10.0.0.1", 20000, encryption=encryption)  # type: ignore[arg-type]
    media = sd.media[0]
    assert media.proto == proto and len(media.attribute_values("crypto")) == lines
    keys = {parse_crypto(v).key for v in media.attribute_values("crypto")}
    assert len(keys) == lines  # each line has its own key


def answer_to(sd_offer: str, crypto: tuple[str, ...], proto: str) -> str:
    lines = ["v=0", "o=- 2 2 IN IP4 192.0.2.9", "s=-", "c=IN IP4 192.0.2.9", "t=0 0",
             f"m=audio 6000 {proto} 0 101", "a=rtpmap:101 telephone-event/8000", *(f"a=crypto:{c}" for c in crypto)]
    return "\r\n".join(lines) + "\r\n"


def test_apply_answer_finds_our_key_by_the_answered_tag() -> None:
    ours = build_offer("10.0.0.1", 20000, encryption="required")
    offered = {parse_crypto(v).tag: parse_crypto(v) for v in ours.media[0].attribute_values("crypto")}
    answer = answer_to(ours.serialize(), (f"2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}",), "RTP/SAVP")
    n = apply_answer(ours, parse_sdp(answer))
    assert n.srtp is not None and n.srtp.suite == "AES_CM_128_HMAC_SHA1_32"
    assert n.srtp.local_key == offered[2].key and n.srtp.remote_key == parse_crypto(f"2 X inline:{KEY}").key


def test_apply_answer_errors() -> None:
    ours = build_offer("10.0.0.1", 20000, encryption="required")
    with pytest.raises(NoCommonCodec, match="no a=crypto"):
        apply_answer(ours, parse_sdp(answer_to("", (), "RTP/SAVP")))
    with pytest.raises(NoCommonCodec, match="not one we offered"):
        apply_answer(ours, parse_sdp(answer_to("", (f"7 AES_CM_128_HMAC_SHA1_80 inline:{KEY}",), "RTP/SAVP")))
    with pytest.raises(SdpError, match="exactly one"):
        apply_answer(ours, parse_sdp(answer_to("", (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}",
                                                    f"2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}"), "RTP/SAVP")))
    best_effort = build_offer("10.0.0.1", 20000, encryption="optional")
    assert apply_answer(best_effort, parse_sdp(answer_to("", (), "RTP/AVP"))).srtp is None
