"""Redaction: corpus recall / false positives, each PII kind in written and spoken form, objects, log records."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from voicebot.compliance.corpus import load_corpus, score_corpus
from voicebot.compliance.redact import (
    RedactingLogFilter,
    Redactor,
    cn_id_valid,
    install_log_redaction,
    luhn_valid,
    redact,
    redact_obj,
)
from voicebot.logs import JsonFormatter

CORPUS = Path(__file__).with_name("redaction_corpus.yaml")
MAX_FALSE_POSITIVE_RATE = 0.02  # at most 1 in 50 negative lines / kept substrings may be touched


def test_corpus_recall_is_complete_and_false_positives_stay_below_bound() -> None:
    score = score_corpus(Redactor(), load_corpus(CORPUS))
    assert score.pii_total >= 60 and score.negatives_total >= 50
    assert score.misses == [] and score.recall == 1.0
    assert score.boundary_errors == []
    assert score.false_positive_rate <= MAX_FALSE_POSITIVE_RATE, score.false_positives


def test_corpus_scoring_notices_a_weaker_redactor() -> None:
    class CardsOnly(Redactor):
        def findings(self, text, sensitive=(), context=""):  # type: ignore[no-untyped-def]
            return [f for f in super().findings(text, sensitive, context) if f.kind == "CARD"]

    score = score_corpus(CardsOnly(), load_corpus(CORPUS))
    assert score.recall < 0.5 and score.misses


def test_corpus_rejects_pii_that_is_not_in_its_text(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("positives: [{text: 'hello', pii: ['4111']}]\nnegatives: []\n")
    with pytest.raises(ValueError, match=r"positives\[0\]: pii '4111' does not occur"):
        load_corpus(bad)


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert cn_id_valid("11010519491231002X") and cn_id_valid("11010519491231002x")
    assert not cn_id_valid("110105194912310021")  # wrong check character
    assert not cn_id_valid("110105194913310028")  # month 13


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111-1111-1111-1111 ok", "card [CARD ****1111] ok"),
        ("card 4111-1111-1111-1112 ok", "card [NUMBER] ok"),  # Luhn fails (one wrong digit): still masked
        ("four one one one one one one one one one one one one one one one", "[CARD ****1111]"),
        ("卡号四一一一一一一一一一一一一一一一", "卡号[CARD ****1111]"),
        ("身份证11010519491231002X。", "身份证[CN_ID]。"),
        ("one one zero one zero five one nine four nine one two three one zero zero two x", "[CN_ID]"),
        ("SSN 219-09-9999", "SSN [SSN]"),
        ("id 219099999", "id [NUMBER]"),  # no SSN without SSN context, but an ID number
        ("dial +1 (415) 555-0123 now", "dial [PHONE] now"),
        ("four one five double five five zero one nine nine", "[PHONE]"),
        ("手机幺三九幺二三四五六七八", "手机[PHONE]"),
        ("order 4155550123", "order 4155550123"),
        ("order 415-555-0123", "order [PHONE]"),  # written as a phone: masked despite the context
        ("a.b-c@mail.example.org", "[EMAIL]"),
        ("flight UA857 at 10:30 on 2024-03-15", "flight UA857 at 10:30 on 2024-03-15"),
    ],
)
def test_redact_examples(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_card_tail_can_be_hidden_and_redaction_is_idempotent() -> None:
    text = "4111 1111 1111 1111 and 415-555-0123"
    assert Redactor(keep_card_last4=False).redact(text) == "[CARD] and [PHONE]"
    once = redact(text)
    assert redact(once) == once


def test_sensitive_values_in_written_spoken_and_chinese_forms() -> None:
    for text in ("ends in 4821", "ends in four eight two one", "尾号四八二一", "ends in 4 8 2 1"):
        assert "[REDACTED]" in redact(text, sensitive=["4821"]), text
    assert redact("ends in 4821") == "ends in 4821"
    assert redact("pin 12", sensitive=["12"]) == "pin 12"  # too short to mask safely


def test_redact_obj_masks_nested_values_and_sensitive_keys_without_mutating() -> None:
    record = {
        "transcript": [{"who": "caller", "text": "my card is 4111 1111 1111 1111"}],
        "slots": {"id_last4": "4821", "factor": "pin"},
        "event": ("heard", "email bob@example.com"),
        "ani": 4155550123,
        "duration_ms": 123456789,
        "headers": {"Authorization": "Bearer abc"},
    }
    out = redact_obj(record, sensitive=["4821"], sensitive_keys={"id_last4"})
    assert out["transcript"][0]["text"] == "my card is [CARD ****1111]"
    assert out["slots"] == {"id_last4": "[REDACTED]", "factor": "pin"}
    assert out["event"] == ("heard", "email [EMAIL]")
    assert out["ani"] == "[PHONE]" and out["duration_ms"] == 123456789
    assert out["headers"]["Authorization"] == "[REDACTED]"
    assert record["slots"]["id_last4"] == "4821"  # the input is untouched


def _logger(name: str, formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_log_filter_redacts_message_args_fields_and_exceptions() -> None:
    logger, stream = _logger("test.redact.json", JsonFormatter())
    install_log_redaction(logger=logger, sensitive_values=lambda: ["4821"])
    try:
        raise ValueError("bad card 4111111111111111")
    except ValueError:
        logger.exception("caller %s said %s", "415-555-0123", "four eight two one",
                         extra={"fields": {"email": "x@example.com", "slots": {"pin": "9999"}}})
    entry = json.loads(stream.getvalue())
    assert entry["msg"] == "caller [PHONE] said [REDACTED]"
    assert entry["email"] == "[EMAIL]" and entry["slots"] == {"pin": "[REDACTED]"}
    assert "4111111111111111" not in stream.getvalue()


def test_log_filter_with_text_formatter_keeps_the_redacted_traceback() -> None:
    logger, stream = _logger("test.redact.text", logging.Formatter("%(message)s"))
    logger.handlers[0].addFilter(RedactingLogFilter())
    try:
        raise RuntimeError("ssn 219-09-9999")
    except RuntimeError:
        logger.exception("failed for jane@example.com")
    text = stream.getvalue()
    assert text.startswith("failed for [EMAIL]")
    assert "RuntimeError: ssn [SSN]" in text and "219-09-9999" not in text


def test_install_log_redaction_adds_one_filter_per_handler() -> None:
    logger, _ = _logger("test.redact.once", logging.Formatter("%(message)s"))
    install_log_redaction(logger=logger)
    install_log_redaction(logger=logger)
    assert sum(isinstance(f, RedactingLogFilter) for f in logger.handlers[0].filters) == 1


def test_sdes_master_keys_are_masked_in_logged_sdp() -> None:
    from voicebot.compliance.redact import Redactor

    sdp = ("m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 "
           "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4\r\n")
    masked = Redactor().redact(sdp)
    assert "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR" not in masked
    assert "inline:[SRTP_KEY]|2^20|1:4" in masked and masked.startswith("m=audio 4000 RTP/SAVP 0")


def test_a_clean_text_remembered_is_still_redacted_once_its_value_becomes_sensitive():
    redactor = Redactor()
    line = "caller said blue falcon"
    assert redactor.redact(line) == line  # clean: remembered
    assert redactor.redact(line, ["blue falcon"]) == "caller said [REDACTED]"  # the slot value now counts
    assert redactor.redact("account_number", context="") == "account_number"
    assert redactor.redact("12345678", context="account_number") != "12345678"  # context still applies


def test_texts_with_personal_data_are_never_kept_in_the_clean_cache():
    redactor = Redactor()
    for _ in range(3):
        assert "4111" not in redactor.redact("card 4111 1111 1111 1111 please")
    assert all("4111" not in text for text, _context, _values in redactor._clean)
