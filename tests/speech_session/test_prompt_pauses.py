"""Turn-taking: a prompt's sentences follow each other without dead air callers talk into (issue 14).

The finance greeting once carried 0.84-1.08 s of silence after "Welcome to Example Bank, <name>." (Piper's trailing
silence, the author's 300 ms break and the next sentence's lead-in added up); callers who waited 0.8 s barged in and
never heard the menu. Real piper voice over a WavChannel; the bot's audio is measured as played.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from voicebot.channels.wav import RATE, WavChannel
from voicebot.calls.conversation import SENTENCE_GAP_MS, DialplanSession
from voicebot.dialplan.events import CallContext
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.schema import Dialplan
from voicebot.nlu.base import NluEngine
from voicebot.speech.prompts import PromptCache
from voicebot.speech.services import SpeechServices
from voicebot.speech.workers import SpeechWorkerPool

pytestmark = pytest.mark.timeout(120)

ASR_MODEL = "tiny.en"
GREETING = ('Welcome to Example Bank, Alice. <break time="300ms"/> You can say balance or lost card. '
            "Say agent at any time.")


def _plan() -> Dialplan:
    return Dialplan.model_validate({
        "dialplan": "pauses", "start": "greet",
        "nodes": {"greet": {"say": GREETING, "hangup": "done"}},
    })


def _silent_gaps_ms(bot: np.ndarray, threshold: int = 200) -> list[float]:
    """Lengths of the quiet stretches between the first and the last audible sample of the bot's audio."""
    loud = np.flatnonzero(np.abs(bot.astype(np.int32)) > threshold)
    steps = np.diff(loud)
    return sorted(float(step) * 1000 / RATE for step in steps if step > RATE // 50)  # > 20 ms: a pause, not a zero


def test_sentences_follow_with_the_authored_break_and_a_short_gap(
    pool: SpeechWorkerPool, nlu: NluEngine, tmp_path: Path
) -> None:
    speech = SpeechServices(pool, PromptCache(tmp_path / "prompts"), asr_model=ASR_MODEL)
    channel = WavChannel(np.zeros(RATE, np.int16), RATE, tail_s=20, speed=1)
    session = DialplanSession(channel, Interpreter(_plan()),
                              CallContext(caller="5550100", channel="wav", call_id=channel.call_id), speech, nlu)
    asyncio.run(asyncio.wait_for(session.run(), 60))
    bot = channel.recording()[:, 1]
    gaps = _silent_gaps_ms(bot)
    assert len(gaps) >= 2, gaps  # the break and the sentence gap, at least (words have short closures too)
    # The two longest pauses are the authored 300 ms break and the 200 ms gap between the last two sentences;
    # the voice's own edge silence no longer adds to them (it made 0.5 s of the break before).
    assert gaps[-1] <= 300 + 60, gaps
    assert gaps[-2] <= SENTENCE_GAP_MS + 60, gaps
