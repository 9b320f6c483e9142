"""A caller who talks at once is heard from their first word: real-time WavChannel, real Whisper + piper workers.

The bot's greeting is several sentences; the session synthesises them before it opens the listen. Caller audio that
arrived meanwhile (from the moment the call was answered) belongs to the caller's first turn: it barges into the
greeting and is recognised whole, instead of being dropped when the listen opens.
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
from voicebot.dialplan.schema import Dialplan
from voicebot.nlu.base import NluEngine
from voicebot.speech.prompts import PromptCache
from voicebot.speech.services import SpeechServices
from voicebot.speech.workers import SpeechWorkerPool
from voicebot.yamlsrc import load_yaml_text, validate

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "audio_fixtures"
ASR_MODEL = "tiny.en"
PLAN = """
dialplan: first-words
nlu: demo
start: greet
nodes:
  greet:
    say: "Welcome to Acme Telecom. Calls may be recorded to improve our service. You can say balance, pay a bill,
      or agent. You can also press a key at any time. How can I help you today?"
    listen:
      intents: {agent: bye, check_balance: bye}
  bye:
    say: "Goodbye."
    hangup: true
"""


@pytest.fixture(scope="module")
def plan() -> Dialplan:
    data, lines = load_yaml_text(textwrap.dedent(PLAN), "first-words.yaml")
    return validate(Dialplan, data, lines, "first-words.yaml")


@pytest.fixture()
def speech(pool: SpeechWorkerPool, tmp_path: Path) -> SpeechServices:
    return SpeechServices(pool, PromptCache(tmp_path / "prompts"), asr_model=ASR_MODEL)


def quiet(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(7)
    return (rng.standard_normal(int(seconds * RATE)) * 20).astype(np.int16)


def spoken(name: str) -> np.ndarray:
    audio = load_caller_audio(FIXTURES / f"{name}.wav")
    loud = np.flatnonzero(np.abs(audio) > 300)
    return audio[max(0, loud[0] - 800):loud[-1] + 160]  # the first word starts within 50 ms of the answer


async def converse(caller: np.ndarray, plan: Dialplan, speech: SpeechServices, nlu: NluEngine
                   ) -> tuple[DialplanSession, WavChannel, float]:
    channel = WavChannel(caller, RATE, speed=1.0, tail_s=0)
    session = DialplanSession(channel, Interpreter(plan), CallContext(caller="5550100", channel="wav",
                                                                      call_id=channel.call_id), speech, nlu)
    listen_opened: list[float] = []
    open_listen = session._listen

    async def timed_listen(listen):  # type: ignore[no-untyped-def]  # records when the first listen opened
        listen_opened.append(channel.now_s)
        return await open_listen(listen)

    session._listen = timed_listen  # type: ignore[method-assign]
    await asyncio.wait_for(session.run(), 120)
    await channel.wait_closed()
    return session, channel, listen_opened[0]


def test_words_spoken_before_the_listen_opens_are_heard(plan: Dialplan, speech: SpeechServices,
                                                        nlu: NluEngine) -> None:
    caller = np.concatenate([spoken("en_agent"), quiet(4.0)])  # "Can I speak to an agent?" from the answer on
    session, channel, opened_s = asyncio.run(converse(caller, plan, speech, nlu))
    lines = [(e["text"], e.get("intent")) for e in session.transcript.entries if e["who"] == "caller"]
    print(f"listen opened {opened_s * 1000:.0f} ms after the answer; caller: {lines}")
    assert opened_s >= 0.2, "the greeting was synthesised too fast for this check: nothing was said before it"
    assert lines and lines[0][1] == "agent", lines
    assert "speak" in lines[0][0].lower(), lines  # "Can I speak" came before the listen opened
    stops = [e.at_s for e in channel.events if e.kind == "stop_playback"]
    assert stops and stops[0] < 2.5, channel.events  # the caller's speech cut the greeting (barge-in)
