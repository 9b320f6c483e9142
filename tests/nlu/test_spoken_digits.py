"""One table of spoken digits (voicebot.nlu.numbers) read the same by slots, codes, redaction, grammars and NLU."""

from __future__ import annotations

import pytest

from voicebot.compliance.redact import Redactor
from voicebot.dialplan.matching import code_key
from voicebot.dialplan.schema import AskSpec
from voicebot.dialplan.slots import extract_slot
from voicebot.nlu.numbers import (
    EN_DIGIT_WORDS,
    SPOKEN_DIGITS,
    ZH_DIGIT_CHARS,
    read_digits,
    tokenize_en,
    read_chunks,
    zh_number,
)
from voicebot.speech.grammar import digits_from_text, spoken_forms


@pytest.mark.parametrize(("said", "digits"), [
    ("one two 3 4", "1234"),
    ("幺二三四", "1234"),
    ("两零幺洞", "2010"),
    ("double five oh", "550"),
    ("triple zero, niner", "0009"),
    ("one o two", "102"),
    ("my number is four, five six", "456"),
    ("１２３", "123"),  # full-width digits come out ASCII
    ("double trouble five", "5"),  # a repeat word applies to the digit right after it only
])
def test_read_digits(said: str, digits: str) -> None:
    assert read_digits(said) == digits


def test_codes_keep_capital_letters_and_o_is_a_letter_there() -> None:
    assert read_digits("A one two, three zero zero one", letters=True) == "A123001"
    assert read_digits("F O X double one", letters=True) == "FOX11"
    assert code_key("C A niner eight one") == "CA981"


@pytest.mark.parametrize(("word", "digit"), sorted(SPOKEN_DIGITS.items()))
def test_every_digit_word_fills_a_digits_slot_and_is_masked_in_a_phone_number(word: str, digit: str) -> None:
    ask = AskSpec(slot="pin", type="digits", length=4, say="?")
    sep = "" if not word.isascii() else " "
    assert extract_slot(ask, text=sep.join([word, "1", "2", "3"])) == digit + "123"
    said = " ".join(["+", "4", "4", "2", "0", "7", word, "4", "6", "0", "9", "5"])  # the word joins the run
    assert Redactor().redact(f"call me on {said} please") == "call me on [PHONE] please", said


def test_the_number_readers_share_the_table() -> None:
    for word, digit in EN_DIGIT_WORDS.items():
        chunks, _ = read_chunks(tokenize_en(f"{word} {word}"), 0)
        assert [c.digits for c in chunks] == [digit, digit], word
    for char, digit in ZH_DIGIT_CHARS.items():
        assert zh_number(char * 3) == (int(digit * 3), digit * 3), char
        assert digits_from_text(char) == digit
    assert zh_number("洞") is None  # the radio zero only inside a digit string: 山洞 holds no number
    assert digits_from_text("幺洞洞") == "100"
    assert "CA九八一" in spoken_forms("CA981")
