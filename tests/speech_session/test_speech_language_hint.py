"""A bilingual call tells the recogniser the caller's language so far (issue 3: Mandarin turns skip the short window).

The bilingual demo dialplan over a WavChannel with real Whisper base and piper workers: a Mandarin caller asks for the
balance, then speaks again. The first recognition has no hint (language detected from scratch); once the caller has
been heard in Mandarin (a finished turn) the next utterance's recognitions carry the hint "zh", and are still
detected and understood.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from voicebot.channels.wav import RATE, WavChannel, load_caller_audio
from voicebot.calls.conversation import DialplanSession
from voicebot.dialplan.events import CallContext
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.loader import load_dialplan
from voicebot.nlu.base import NluEngine
from voicebot.speech.prompts import PromptCache
from voicebot.speech.grammar import Grammar
from voicebot.speech.services import SpeechServices, Utterance
from voicebot.speech.voices import default_voices
from voicebot.speech.workers import SpeechWorkerPool

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "audio_fixtures"
ASR_MODEL = "base"  # multilingual: the demo dialplan detects en/zh on every utterance


@pytest.fixture(scope="module")
def bilingual_pool() -> Iterator[SpeechWorkerPool]:
    workers = SpeechWorkerPool(1, asr_models=(ASR_MODEL,), voices=default_voices())  # en and zh voices
    asyncio.run(workers.start())
    yield workers
    asyncio.run(workers.close())


class HintRecorder:
    """The real speech services, remembering each recognition's hint and result."""

    def __init__(self, services: SpeechServices) -> None:
        self.services = services
        self.multilingual = services.multilingual
        self.calls: list[tuple[str | None, str, str]] = []  # (hint, detected language, text)

    async def synthesize(self, text: str, lang: str | None, rate: int) -> np.ndarray:
        return await self.services.synthesize(text, lang, rate)

    async def transcribe(self, pcm16k: np.ndarray, lang: str | None, likely: str | None = None,
                         hints: Sequence[str] = (), grammar: Grammar | None = None) -> Utterance:
        utterance = await self.services.transcribe(pcm16k, lang, likely, hints, grammar)
        self.calls.append((likely, utterance.language, utterance.text))
        return utterance


def caller_audio() -> np.ndarray:
    """Mandarin: 'I want to check my account balance', then (after the bot's reply) 'I want to check a refund'."""
    gap = np.zeros(int(7.0 * RATE), dtype=np.int16)
    return np.concatenate([np.zeros(int(8.0 * RATE), dtype=np.int16), load_caller_audio(FIXTURES / "zh_balance.wav"),
                           gap, load_caller_audio(FIXTURES / "zh_refund_status.wav"), gap])


def test_after_a_mandarin_turn_recognition_is_hinted_zh_and_still_detected(
        bilingual_pool: SpeechWorkerPool, nlu: NluEngine, tmp_path: Path) -> None:
    speech = HintRecorder(SpeechServices(bilingual_pool, PromptCache(tmp_path / "prompts"), asr_model=ASR_MODEL))
    channel = WavChannel(caller_audio(), RATE, speed=2, tail_s=5)

    async def call() -> DialplanSession:
        session = DialplanSession(channel, Interpreter(load_dialplan(REPO / "dialplans" / "demo.yaml")),
                                  CallContext(caller="5550100", channel="wav", call_id=channel.call_id), speech, nlu)
        await asyncio.wait_for(session.run(), 150)
        await channel.wait_closed()
        return session

    session = asyncio.run(call())
    assert speech.calls[0][0] is None  # nothing known about the caller yet
    turns = [e for e in session.transcript.entries if e["who"] == "caller" and e.get("lang") == "zh"]
    assert len(turns) >= 2, session.transcript.entries
    # Decodes within the first turn (speculative ones included) have no hint; the second utterance's all have "zh".
    second = [c for c in speech.calls if "退款" in c[2]]
    assert second, speech.calls
    assert all(hint == "zh" and language == "zh" for hint, language, _ in second), speech.calls
