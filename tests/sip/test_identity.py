"""Caller identity (PAI / RPID / From, trusted or not, privacy) and redirection (Diversion / History-Info)."""

from __future__ import annotations

from voicebot.sip.headers import Headers
from voicebot.sip.identity import caller_identity, redirection

FROM = ("From", '"Spoofed" <sip:5550000@198.51.100.7>;tag=a1')


def test_pai_is_believed_from_a_trusted_source_and_prefers_tel() -> None:
    headers = Headers([FROM, ("P-Asserted-Identity", '"Alice" <sip:+15551234@carrier.example>, <tel:+15551234;cpc=x>')])
    found = caller_identity(headers, trusted=True)
    assert (found.number, found.source, found.display, found.private) == ("+15551234", "pai", "Alice", False)


def test_pai_from_an_untrusted_source_is_ignored() -> None:
    headers = Headers([FROM, ("P-Asserted-Identity", "<sip:+15551234@carrier.example>")])
    found = caller_identity(headers, trusted=False)
    assert (found.number, found.source) == ("5550000", "from")


def test_remote_party_id_when_no_pai_and_its_privacy() -> None:
    headers = Headers([FROM, ("Remote-Party-ID", '"Bob" <sip:+4930123@gw.example>;party=calling;privacy=full')])
    found = caller_identity(headers, trusted=True)
    assert (found.number, found.source, found.private, found.shown) == ("+4930123", "rpid", True, "anonymous")
    assert caller_identity(headers, trusted=False).source == "from"


def test_privacy_id_keeps_the_number_for_the_dialplan_but_not_for_logs() -> None:
    headers = Headers([FROM, ("P-Asserted-Identity", "<tel:+15551234>"), ("Privacy", "id;critical")])
    found = caller_identity(headers, trusted=True)
    assert found.number == "+15551234" and found.private and found.shown == "anonymous"
    assert not caller_identity(Headers([FROM, ("Privacy", "none")]), trusted=True).private


def test_anonymous_from_is_private() -> None:
    headers = Headers([("From", '"Anonymous" <sip:anonymous@anonymous.invalid>;tag=x')])
    found = caller_identity(headers, trusted=False)
    assert found.number == "" and found.private


def test_diversion_last_value_is_the_original_called_number() -> None:
    headers = Headers([FROM, ("Diversion", "<sip:2002@pbx.example>;reason=no-answer;counter=1"),
                       ("Diversion", '<sip:1001@pbx.example>;reason="user-busy";counter=1')])
    found = redirection(headers)
    assert found is not None
    assert (found.original_called, found.reason, found.hops) == ("1001", "user-busy", ("1001", "2002"))


def test_history_info_first_index_is_the_original_target() -> None:
    headers = Headers([FROM, ("History-Info", "<sip:voicebot@10.0.0.1;cause=486>;index=1.1, "
                                              "<sip:+15550100@carrier.example>;index=1")])
    found = redirection(headers)
    assert found is not None
    assert (found.original_called, found.reason) == ("+15550100", "user-busy")
    assert redirection(Headers([FROM])) is None
