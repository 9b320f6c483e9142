"""The one-digit edits tried when a digit string's pauses count one digit more or fewer than the decode wrote
(voicebot.speech.grammar_decode `_insertions`, `_deletions`): ranked from the decoder's per-step log probabilities.

Base's own tokenizer; the per-step distributions are made up, so each ranking rule is checked on its own.
"""

from __future__ import annotations

import numpy as np
import pytest
import tokenizers
from faster_whisper.tokenizer import Tokenizer

from voicebot.speech.grammar_decode import _deletions, _insertions, _single_digit_tokens
from voicebot.speech.models import whisper_model_dir


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    hf = tokenizers.Tokenizer.from_file(str(whisper_model_dir("base") / "tokenizer.json"))
    return Tokenizer(hf, True, task="transcribe", language="en")


def flat(tokenizer: Tokenizer, steps: int) -> np.ndarray:
    return np.full((steps, tokenizer.tokenizer.get_vocab_size()), -20.0)


def test_a_digit_the_decoder_nearly_wrote_is_inserted_where_it_nearly_wrote_it(tokenizer):
    tokens = tokenizer.encode(" 8 9 9 6")
    steps = flat(tokenizer, len(tokens) + 1)
    for k, token in enumerate(tokens):
        steps[k][token] = -0.01  # what it wrote
    four = _single_digit_tokens(tokenizer)["4"]
    steps[0][four] = -2.0  # "or 8996...": a 4 before the first digit, runner-up
    steps[1][_single_digit_tokens(tokenizer)["1"]] = -5.0  # a 1 before the first 9, less likely
    ranked = _insertions(tokenizer, tokens, "8996", steps)
    assert ranked[:2] == ["48996", "81996"]
    assert "88996" not in ranked[:2]  # what it wrote is no alternative to itself


def test_a_repeated_digit_is_dropped_before_an_improbable_one(tokenizer):
    tokens = tokenizer.encode(" 7 4 8 4 3 7 0 0")
    steps = flat(tokenizer, len(tokens) + 1)
    for k, token in enumerate(tokens):
        steps[k][token] = -0.01
    steps[2][tokens[2]] = -3.0  # the 8 written doubtfully
    ranked = _deletions(tokenizer, tokens, "74843700", steps)
    assert ranked[0] == "7484370"  # one of the pair "00"
    assert ranked[1] == "7443700"  # then the least probable digit


def test_each_digit_of_a_token_writing_several_can_be_dropped(tokenizer):
    tokens = tokenizer.encode(" 74843700")
    assert len(tokens) < 8  # several digits a token
    steps = flat(tokenizer, len(tokens) + 1)
    ranked = _deletions(tokenizer, tokens, "74843700", steps)
    assert set(ranked) == {"74843700"[:i] + "74843700"[i + 1:] for i in range(8)}
