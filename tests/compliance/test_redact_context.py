"""Numbers that fail their checksums are masked by length and context; keyed digits are masked by default."""

from __future__ import annotations

from voicebot.compliance.pii_context import context_kind, scale_number_spans
from voicebot.compliance.redact import Redactor, mask_keyed, redact, redact_obj


def test_agent_context_profile_note_with_a_misheard_card_is_masked() -> None:
    profile = {"note": "my card is 4526 0181 5908 3013 thanks", "plan": "gold", "items": 3}
    assert redact_obj(profile) == {"note": "my card is [NUMBER] thanks", "plan": "gold", "items": 3}


def test_field_names_give_context() -> None:
    assert redact_obj({"account_number": "12345678", "room": "12345678"}) == {
        "account_number": "[NUMBER]", "room": "12345678"}
    assert redact_obj({"pin": "9037"}) == {"pin": "[REDACTED]"}  # a sensitive key, wholesale
    assert redact_obj({"date_of_birth": "1980-05-03", "preferred_date": "2026-12-01"}) == {
        "date_of_birth": "[DOB]", "preferred_date": "2026-12-01"}


def test_keyed_digits_are_masked_unless_shown() -> None:
    assert redact_obj({"digits": "4111111111111112"}) == {"digits": "[DIGITS 16]"}
    assert redact_obj({"digits": "1"}) == {"digits": "1"}  # one key: a menu choice
    assert Redactor(show_keyed_digits=True).redact_obj({"digits": "123"}) == {"digits": "123"}
    assert mask_keyed("90") == "[DIGITS 2]" and mask_keyed("") == ""


def test_nearest_cue_wins() -> None:
    assert context_kind("my order, no sorry, my card number is ") == "ACCOUNT"
    assert context_kind("the card for order ") == "NOT_PERSONAL"
    assert context_kind("my pin is ") == "SECRET"
    assert context_kind("I want ") is None


def test_amounts_and_times_stay() -> None:
    for text in ("order 3 items", "at 10:30", "$25.50", "3 thousand 4 hundred dollars", "2 million users",
                 "5 billion minutes", "room 1204"):
        assert redact(text) == text
    assert scale_number_spans("5 billion 3 million") == [(0, 19)]


def test_identifier_fields_are_kept_free_text_is_not() -> None:
    call_id = "a84b4c76e66710@pc33.atlanta.com"
    out = redact_obj({"call_id": call_id, "tag": "1928301774", "note": f"mail {call_id}"})
    assert out == {"call_id": call_id, "tag": "1928301774", "note": "mail [EMAIL]"}


def test_json_audit_messages_are_redacted_field_by_field() -> None:
    import io
    import json
    import logging

    from voicebot.compliance.redact import install_log_redaction

    stream = io.StringIO()
    logger = logging.getLogger("test.redact.audit_json")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.handlers[:] = [logging.StreamHandler(stream)]
    install_log_redaction(logger=logger)
    logger.info(json.dumps({"event": "recording_read", "call_id": "a1@pc33.atlanta.com", "who": "x@example.com"}))
    assert json.loads(stream.getvalue()) == {"event": "recording_read", "call_id": "a1@pc33.atlanta.com",
                                             "who": "[EMAIL]"}
