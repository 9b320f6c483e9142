"""Semantic endpointing in the call session: a small dialplan on the demo NLU over a real-time WavChannel, real
Whisper + piper workers.

A complete answer ends the turn after the short early silence; an incomplete one (three of six digits) does not,
and the digits the caller adds after the pause are part of the same answer; speech resuming within the hangover of
an early end joins that turn (its reply is cut and taken back), later speech is the next turn;
`early_endpoint: {enabled: false}` restores the plain end_silence_ms endpoint. The plain end silence is long (2.5 s)
so that only semantic endpointing can end a turn sooner, even on a loaded machine.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import numpy as np
import pytest

from voicebot.channels.wav import RATE, WavChannel, load_caller_audio
from voicebot.calls.conversation import DialplanSession
from voicebot.dialplan.events import CallContext
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.schema import Dialplan, EarlyEndpointSpec
from voicebot.nlu.base import NluEngine
from voicebot.speech.prompts import PromptCache
from voicebot.speech.services import SpeechServices
from voicebot.speech.workers import SpeechWorkerPool
from voicebot.yamlsrc import load_yaml_text, validate

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "audio_fixtures"
ASR_MODEL = "tiny.en"
POOL_SIZE = 2  # speech workers for this module (conftest.pool)
END_SILENCE_MS = 2500
PLAN = f"""
dialplan: early-test
nlu: demo
start: greet
early_endpoint: {{silence_ms: 300}}
global:
  intents: {{agent: bye}}
nodes:
  greet:
    say: "Say balance or pay a bill."
    listen:
      intents: {{check_balance: account, pay_bill: account}}
      end_silence_ms: {END_SILENCE_MS}
  account:
    ask: {{slot: account, type: digits, length: 6, say: "Your six digit account number?", confirm: true,
          end_silence_ms: {END_SILENCE_MS}}}
    goto: bye
  bye:
    say: "Goodbye."
    hangup: true
"""


@pytest.fixture(scope="module")
def demo() -> Dialplan:
    data, lines = load_yaml_text(textwrap.dedent(PLAN), "early-test.yaml")
    return validate(Dialplan, data, lines, "early-test.yaml")


@pytest.fixture()
def speech(pool: SpeechWorkerPool, tmp_path: Path) -> SpeechServices:
    return SpeechServices(pool, PromptCache(tmp_path / "prompts"), asr_model=ASR_MODEL)


def spoken(name: str) -> np.ndarray:
    audio = load_caller_audio(FIXTURES / f"{name}.wav")
    loud = np.flatnonzero(np.abs(audio) > 300)
    return audio[max(0, loud[0] - 1600):loud[-1] + 160]


def quiet(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(7)
    return (rng.standard_normal(int(seconds * RATE)) * 20).astype(np.int16)


def split_at_widest_gap(audio: np.ndarray, pause_s: float) -> np.ndarray:
    """Widen the longest quiet stretch in the middle third of ``audio`` to ``pause_s`` of silence."""
    frame = RATE // 50
    level = np.array([np.abs(audio[i:i + frame]).max() for i in range(0, len(audio) - frame, frame)])
    third = len(level) // 3
    middle = level[third:2 * third]
    index = third + int(np.argmin(np.convolve(middle, np.ones(5), "same")))
    cut = index * frame
    return np.concatenate([audio[:cut], quiet(pause_s), audio[cut:]])


async def converse(caller: np.ndarray, plan: Dialplan, speech: SpeechServices, nlu: NluEngine
                   ) -> tuple[DialplanSession, WavChannel]:
    channel = WavChannel(caller, RATE, speed=1.0, tail_s=0)
    session = DialplanSession(channel, Interpreter(plan), CallContext(caller="5550100", channel="wav",
                                                                      call_id=channel.call_id), speech, nlu)
    await asyncio.wait_for(session.run(), 120)
    await channel.wait_closed()
    return session, channel


def digits_in(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def caller_lines(session: DialplanSession) -> list[tuple[str, str | None]]:
    return [(e["text"], e.get("intent") or e.get("kind")) for e in session.transcript.entries if e["who"] == "caller"]


def test_complete_answers_end_the_turn_early(demo: Dialplan, speech: SpeechServices, nlu: NluEngine) -> None:
    caller = np.concatenate([quiet(2.0), spoken("en_balance"), quiet(4.0), spoken("en_account_digits"), quiet(3.0)])
    session, _ = asyncio.run(converse(caller, demo, speech, nlu))
    lines = caller_lines(session)
    assert lines[0][1] == "check_balance" and digits_in(lines[1][0]) == "123456", lines
    first, second = session.turns[:2]
    assert first.early and second.early, session.turns
    assert first.endpoint_ms < END_SILENCE_MS and second.endpoint_ms < END_SILENCE_MS
    assert first.asr_ms == 0.0 and first.speculative_hit  # the speculative result ended the turn


def test_incomplete_digits_wait_and_the_rest_joins_the_same_answer(demo: Dialplan, speech: SpeechServices,
                                                                   nlu: NluEngine) -> None:
    digits = split_at_widest_gap(spoken("en_account_digits"), pause_s=1.0)
    caller = np.concatenate([quiet(2.0), spoken("en_balance"), quiet(4.0), digits, quiet(3.0)])
    session, _ = asyncio.run(converse(caller, demo, speech, nlu))
    lines = caller_lines(session)
    assert digits_in(lines[1][0]) == "123456", lines  # not "123" (+ a nomatch for "456")
    assert session.turns[1].asr_decodes >= 2  # the pause was decoded and judged incomplete


def test_speech_resuming_within_the_hangover_joins_the_early_turn(demo: Dialplan, speech: SpeechServices,
                                                                  nlu: NluEngine) -> None:
    """"No" ends the read-back turn early; "that's wrong" 3 s later is within the account question's hangover (6 s
    here: an early end on a loaded machine may take 2 s of silence): it is the rest of the same answer, not the
    answer to the re-asked question."""
    ask = demo.nodes["account"].ask
    assert ask is not None
    patient = ask.model_copy(update={"end_silence_ms": 6000})
    plan = demo.model_copy(update={"nodes": {**demo.nodes, "account": demo.nodes["account"].model_copy(
        update={"ask": patient})}})
    no_then_more = split_at_widest_gap(spoken("en_no"), pause_s=3.0)
    # 8 s before "No": past the 6 s hangover of the digits turn, so "No" answers the read-back question
    before = np.concatenate([quiet(2.0), spoken("en_balance"), quiet(4.0), spoken("en_account_digits"), quiet(8.0)])
    caller = np.concatenate([before, no_then_more, quiet(12.0)])  # 6 s end silence, then the reply on a loaded box
    session, _ = asyncio.run(converse(caller, plan, speech, nlu))
    entries = session.transcript.entries
    assert session.turns[2].early, session.turns  # "No" ended its turn before the caller went on
    rejoined = [i for i, e in enumerate(entries) if e["who"] == "event" and e["text"] == "rejoined"]
    assert len(rejoined) == 1, caller_lines(session)
    answer = next(e for e in entries[rejoined[0]:] if e["who"] == "caller")
    assert answer.get("intent") == "deny", caller_lines(session)  # "No, that's wrong." read by the yes/no grammar
    later = [e for e in entries[entries.index(answer) + 1:] if e["who"] == "caller" and e.get("kind") != "noinput"]
    assert later == [], later  # "that's wrong" was not taken as (a nomatch for) the account number asked next
    reply = [e["text"] for e in entries[entries.index(answer) + 1:] if e["who"] == "bot"]
    assert reply and "account number" in reply[0], reply
    assert [t.rejoined for t in session.turns].count(True) == 1, session.turns


def test_speech_after_the_hangover_is_the_next_turn(demo: Dialplan, speech: SpeechServices, nlu: NluEngine) -> None:
    """Past the hangover (3.5 s > 2.5 s) the caller's next words answer the next question: no rejoin."""
    no_then_more = split_at_widest_gap(spoken("en_no"), pause_s=3.5)
    before = np.concatenate([quiet(2.0), spoken("en_balance"), quiet(4.0), spoken("en_account_digits"), quiet(5.0)])
    caller = np.concatenate([before, no_then_more, quiet(4.0)])
    session, _ = asyncio.run(converse(caller, demo, speech, nlu))
    lines = caller_lines(session)
    assert lines[2][1] == "deny" and "wrong" not in lines[2][0].lower(), lines
    assert not any(e["text"] == "rejoined" for e in session.transcript.entries if e["who"] == "event")
    assert len(lines) >= 4 and "wrong" in lines[3][0].lower(), lines  # "that's wrong" became the next turn


def test_disabled_in_the_dialplan_waits_for_end_silence(demo: Dialplan, speech: SpeechServices,
                                                        nlu: NluEngine) -> None:
    plan = demo.model_copy(update={"early_endpoint": EarlyEndpointSpec(enabled=False)})
    caller = np.concatenate([quiet(2.0), spoken("en_balance"), quiet(4.0)])
    session, _ = asyncio.run(converse(caller, plan, speech, nlu))
    assert len(caller_lines(session)) == 1, caller_lines(session)
    assert not session.turns[0].early and session.turns[0].endpoint_ms == END_SILENCE_MS
