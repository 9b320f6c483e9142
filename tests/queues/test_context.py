"""Call context: masking, the User-to-User and X-Voicebot-Call-Id header values, callback numbers."""

from __future__ import annotations

import pytest

from voicebot.queues.callbacks import CallbackTask, InvalidCallbackNumber, attempt_failed, confirm_number, is_due
from voicebot.queues.context import (
    CallContextRecord, call_id_header, context_id_from_user_to_user, mask_pii, user_to_user,
)


def test_masking_keeps_last_four_digits_and_hides_email():
    assert mask_pii("card 4111 1111 1111 1234 ok") == "card ************1234 ok"
    assert mask_pii("mail me at a.b@example.com") == "mail me at [email]"
    assert mask_pii("room 42, year 2024") == "room 42, year 2024"  # short numbers are not PII


def test_record_masks_turns_and_sensitive_slots():
    record = CallContextRecord.new("c1", "+8613812345678", "zh-CN", 5.0)
    record.add_turn("caller", "身份证 110101199003074578")
    record.set_slots({"id_last4": "4578", "amount": "100"}, sensitive=["id_last4"])
    data = record.to_dict()
    assert "110101199003074578" not in str(data) and data["transcript"][0]["text"].endswith("4578")
    assert data["slots"] == {"id_last4": "****", "amount": "100"} and data["caller"].endswith("5678")
    assert CallContextRecord.from_dict(data) == record


def test_user_to_user_round_trip_and_limits():
    record = CallContextRecord.new("c1", "+1555", "en", 0)
    value = user_to_user(record.context_id)
    hex_part, params = value.split(";")
    assert params == "encoding=hex" and len(hex_part) <= 128 and int(hex_part, 16) >= 0
    assert context_id_from_user_to_user(value) == record.context_id
    assert len(user_to_user("x" * 64).split(";")[0]) == 128
    with pytest.raises(ValueError):
        user_to_user("x" * 65)
    with pytest.raises(ValueError):
        user_to_user("bad id;drop")
    with pytest.raises(ValueError):
        context_id_from_user_to_user("zz;encoding=hex")


def test_call_id_header():
    assert call_id_header("a84b4c76e66710@pc33.example.com") == "a84b4c76e66710@pc33.example.com"
    for bad in ("two words", "x\r\nVia: evil", "", "a;b"):
        with pytest.raises(ValueError):
            call_id_header(bad)


def test_callback_number_confirmation_and_retry():
    assert confirm_number("+1 (555) 010-0200") == "+15550100200"
    assert confirm_number("sip:+15550100@10.0.0.1", keyed="13812345678") == "13812345678"
    assert confirm_number("sip:+15550100@10.0.0.1", allowed=["+1555*"]) == "+15550100"
    with pytest.raises(InvalidCallbackNumber, match="not allowed"):
        confirm_number("+900123456", allowed=["+1555*", "0*"])
    with pytest.raises(InvalidCallbackNumber, match="withheld"):
        confirm_number(None, "")
    with pytest.raises(InvalidCallbackNumber, match="not a phone number"):
        confirm_number("anonymous")
    task = CallbackTask("cb:c1", "c1", "+1555", "cards", [], 0, "", "n", 0, 0, not_before=0, max_attempts=2)
    assert is_due(task, 0)
    retry = attempt_failed(task, 10, retry_after_s=60)
    assert (retry.state, retry.not_before, is_due(retry, 69), is_due(retry, 70)) == ("pending", 70, False, True)
    assert attempt_failed(retry, 80).state == "failed"
