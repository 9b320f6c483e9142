"""Dialogs (RFC 3261 §12) without sockets: identifiers, route sets, CSeq rules, in-dialog requests."""

from __future__ import annotations

from voicebot.sip.dialog import Dialog
from voicebot.sip.message import SipRequest, SipResponse
from voicebot.sip.parser import parse_message

INVITE = (
    "INVITE sip:bot@10.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-d1\r\n"
    "Record-Route: <sip:p2.example.com;lr>\r\n"
    "Record-Route: <sip:p1.example.com;lr>\r\n"
    "Max-Forwards: 68\r\n"
    'From: "Alice" <sip:alice@example.com>;tag=alice-1\r\n'
    "To: <sip:bot@example.com>\r\n"
    "Call-ID: dialog-1@10.0.0.9\r\n"
    "CSeq: 7 INVITE\r\n"
    "Contact: <sip:alice@10.0.0.9:5062;transport=udp>\r\n"
    "Content-Length: 0\r\n\r\n"
)


def parsed(text: str) -> SipRequest | SipResponse:
    message = parse_message(text.encode())
    assert isinstance(message, (SipRequest, SipResponse))
    return message


def uas_dialog() -> Dialog:
    invite = parsed(INVITE)
    assert isinstance(invite, SipRequest)
    return Dialog.from_incoming_invite(invite, local_tag="bot-1", peer_addr=("10.0.0.9", 5060))


def test_uas_dialog_takes_its_identity_target_and_route_set_from_the_invite():
    dialog = uas_dialog()
    assert dialog.key == ("dialog-1@10.0.0.9", "bot-1", "alice-1")
    assert dialog.remote_target == "sip:alice@10.0.0.9:5062;transport=udp"  # the Contact, not the From
    assert dialog.route_set == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]  # same order (UAS)
    assert dialog.remote_seq == 7 and dialog.is_uas


def test_an_in_dialog_bye_goes_to_the_contact_through_the_route_set_with_swapped_tags_and_a_higher_cseq():
    dialog = uas_dialog()
    first = dialog.local_seq
    bye = dialog.create_request("BYE")
    assert bye.uri == "sip:alice@10.0.0.9:5062;transport=udp"
    assert bye.headers.values("Route") == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert bye.from_.tag == "bot-1" and str(bye.from_.uri) == "sip:bot@example.com"
    assert bye.to.tag == "alice-1" and str(bye.to.uri) == "sip:alice@example.com"
    assert bye.call_id == "dialog-1@10.0.0.9" and bye.cseq == (first + 1, "BYE")
    again = dialog.create_request("INFO", body=b"Signal=5\r\n", content_type="application/dtmf-relay")
    assert again.cseq == (first + 2, "INFO") and again.headers.get("Content-Type") == "application/dtmf-relay"
    assert bye.headers.values("Via") == []  # the UA adds Via when sending


def test_a_request_with_a_lower_cseq_than_the_last_is_refused_but_ack_and_cancel_are_not_counted():
    dialog = uas_dialog()
    reinvite = parsed(INVITE.replace("CSeq: 7 INVITE", "CSeq: 9 INVITE").replace("To: <sip:bot@example.com>",
                                                                               "To: <sip:bot@example.com>;tag=bot-1"))
    assert isinstance(reinvite, SipRequest) and dialog.matches(reinvite)
    assert dialog.accept_remote_cseq(reinvite) and dialog.remote_seq == 9
    stale = parsed(INVITE.replace("CSeq: 7 INVITE", "CSeq: 8 BYE").replace("INVITE sip:", "BYE sip:", 1))
    assert isinstance(stale, SipRequest) and not dialog.accept_remote_cseq(stale)  # → 500 (§12.2.2)
    ack = parsed(INVITE.replace("CSeq: 7 INVITE", "CSeq: 1 ACK").replace("INVITE sip:", "ACK sip:", 1))
    assert isinstance(ack, SipRequest) and dialog.accept_remote_cseq(ack) and dialog.remote_seq == 9


def test_a_request_with_another_tag_does_not_match_the_dialog():
    dialog = uas_dialog()
    other = parsed(INVITE.replace("To: <sip:bot@example.com>", "To: <sip:bot@example.com>;tag=someone-else"))
    assert isinstance(other, SipRequest) and not dialog.matches(other)


def test_uac_dialog_reverses_the_record_route_of_the_2xx_and_keeps_the_invite_cseq_for_the_ack():
    invite = parsed(INVITE.replace("Record-Route: <sip:p2.example.com;lr>\r\nRecord-Route: <sip:p1.example.com;lr>\r\n",
                                   ""))
    assert isinstance(invite, SipRequest)
    ok = parsed(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-d1\r\n"
        "Record-Route: <sip:p2.example.com;lr>\r\nRecord-Route: <sip:p1.example.com;lr>\r\n"
        'From: "Alice" <sip:alice@example.com>;tag=alice-1\r\nTo: <sip:bot@example.com>;tag=agent-9\r\n'
        "Call-ID: dialog-1@10.0.0.9\r\nCSeq: 7 INVITE\r\nContact: <sip:agent@10.0.0.7:5080>\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(ok, SipResponse)
    dialog = Dialog.from_2xx(invite, ok, ("10.0.0.7", 5080))
    assert dialog.key == ("dialog-1@10.0.0.9", "alice-1", "agent-9") and not dialog.is_uas
    assert dialog.route_set == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]  # reversed (UAC)
    ack = dialog.create_request("ACK", cseq=7)
    assert ack.cseq == (7, "ACK") and ack.uri == "sip:agent@10.0.0.7:5080" and dialog.local_seq == 7
    assert dialog.create_request("BYE").cseq == (8, "BYE")
