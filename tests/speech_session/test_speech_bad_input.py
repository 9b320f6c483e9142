"""Bad input on the speech path (issue 3): the demo dialplan over a WavChannel with real Whisper + piper workers.

Each scenario asserts the defined outcome from the session's transcript: silence takes the counted NoInput path to
the agent fallback; noise and music never yield an intent; clipped speech is understood or is a NoMatch; a caller
who never stops is cut at the maximum utterance length and answered; Mandarin to an English-only dialplan is a
NoMatch; a crashed ASR worker turns into a NoMatch and the caller's keys carry the call on.

One ASR worker (tiny.en: the fast English model) is shared by the module. Caller audio runs several times faster
than real time (WavChannel speed), but the session's no-input timers are wall-clock, so silence lasts long enough.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from voicebot.channels.wav import RATE, WavChannel, load_caller_audio
from voicebot.calls.conversation import DialplanSession
from voicebot.dialplan.events import CallContext
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.loader import load_dialplan
from voicebot.dialplan.schema import Dialplan
from voicebot.nlu.base import NluEngine
from voicebot.speech.prompts import PromptCache
from voicebot.speech.services import SpeechServices, Utterance
from voicebot.speech.workers import SpeechWorkerPool

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "audio_fixtures"
ASR_MODEL = "tiny.en"
POOL_SIZE = 1  # speech workers for this module (conftest.pool)
DEMO_INTENT_NODES = {"check_balance", "pay_bill", "agent", "repeat", "goodbye", "speak_chinese", "speak_english"}


@pytest.fixture(scope="module")
def demo() -> Dialplan:
    return load_dialplan(REPO / "dialplans" / "demo.yaml")


@pytest.fixture()
def speech(pool: SpeechWorkerPool, tmp_path: Path) -> SpeechServices:
    return SpeechServices(pool, PromptCache(tmp_path / "prompts"), asr_model=ASR_MODEL)


def english_only(plan: Dialplan) -> Dialplan:
    """The demo dialplan as an English-only hotline (no zh, no language switching)."""
    return plan.model_copy(update={"languages": ["en-US"], "auto_language": False})


def fixture_audio(name: str) -> np.ndarray:
    return load_caller_audio(FIXTURES / f"{name}.wav")


def silence(seconds: float, level: int = 0) -> np.ndarray:
    rng = np.random.default_rng(7)
    return (rng.standard_normal(int(seconds * RATE)) * level).astype(np.int16)


def lead(audio: np.ndarray, seconds: float) -> np.ndarray:
    return np.concatenate([silence(seconds, 20), audio])


def white_noise(seconds: float, rms: float) -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.clip(rng.standard_normal(int(seconds * RATE)) * rms, -32768, 32767).astype(np.int16)


def music(seconds: float) -> np.ndarray:
    """Chords changing every half second, with harmonics and a soft attack: music-on-hold, not speech."""
    rng = np.random.default_rng(3)
    notes = [220.0, 246.9, 261.6, 293.7, 329.6, 349.2, 392.0, 440.0]
    out = np.zeros(int(seconds * RATE))
    step = RATE // 2
    t = np.arange(step) / RATE
    envelope = np.minimum(1.0, t / 0.03) * np.exp(-t * 1.5)
    for start in range(0, len(out) - step + 1, step):
        chord = rng.choice(notes, size=3, replace=False)
        tone = sum(sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3)) for f in chord)
        out[start:start + step] = tone * envelope
    return (out / np.abs(out).max() * 12000).astype(np.int16)


def trimmed(audio: np.ndarray, threshold: int = 300) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > threshold)
    return audio[loud[0]:loud[-1] + 1]


async def converse(channel: WavChannel, plan: Dialplan, speech: Any, nlu: NluEngine, timeout_s: float = 90,
                   until: Callable[[DialplanSession], bool] | None = None) -> DialplanSession:
    """Run the call to its end; with ``until``, the caller hangs up as soon as it holds (after the bot's reply)."""
    session = DialplanSession(channel, Interpreter(plan),
                              CallContext(caller="5550100", channel="wav", call_id=channel.call_id), speech, nlu)
    run = asyncio.ensure_future(session.run())
    deadline = asyncio.get_running_loop().time() + timeout_s
    while until is not None and not run.done() and asyncio.get_running_loop().time() < deadline:
        if until(session):
            channel.caller_hangup()
            break
        await asyncio.sleep(0.05)
    await asyncio.wait_for(run, timeout_s)
    await channel.wait_closed()
    return session


def caller_turns(session: DialplanSession) -> list[dict[str, Any]]:
    return [e for e in session.transcript.entries if e["who"] == "caller"]


def bot_says(session: DialplanSession) -> list[str]:
    return [e["text"] for e in session.transcript.entries if e["who"] == "bot"]


def answered(session: DialplanSession) -> bool:
    """The caller has had a turn (speech, keys or silence) and the bot has started its reply to it."""
    entries = session.transcript.entries
    last_caller = max((i for i, e in enumerate(entries) if e["who"] == "caller"), default=None)
    return last_caller is not None and any(e["who"] == "bot" for e in entries[last_caller + 1:])


def heard_intents(session: DialplanSession) -> list[str | None]:
    return [e.get("intent") for e in caller_turns(session) if "kind" not in e]


def test_silence_takes_the_noinput_path_then_the_agent_fallback(demo: Dialplan, speech: SpeechServices,
                                                                 nlu: NluEngine) -> None:
    channel = WavChannel(silence(240, level=30), RATE, speed=8, tail_s=0)
    session = asyncio.run(converse(channel, demo, speech, nlu))
    kinds = [e.get("kind") for e in caller_turns(session)]
    assert kinds == ["noinput"] * 3, session.transcript.entries
    said = bot_says(session)
    assert said.count("Sorry, I didn't hear you.") == 2  # the third noinput goes to the fallback
    assert "Let me get you an agent." in said
    assert session.outcome == "no_agents"  # no queues on this box: the agent fallback's defined end
    assert channel.ended == "bot hangup"


@pytest.mark.parametrize("name,audio", [
    ("white noise", white_noise(8, rms=3000)),
    ("loud white noise", white_noise(8, rms=12000)),
    ("music", music(8)),
])
def test_noise_and_music_never_yield_an_intent(name: str, audio: np.ndarray, demo: Dialplan,
                                               speech: SpeechServices, nlu: NluEngine) -> None:
    caller = lead(np.concatenate([audio, silence(60, 20)]), 10)  # after the greeting; long enough for a NoInput
    channel = WavChannel(caller, RATE, speed=8, tail_s=0)
    session = asyncio.run(converse(channel, english_only(demo), speech, nlu, until=answered))
    turns = caller_turns(session)
    assert turns, f"{name}: the session never answered the caller at all"
    assert heard_intents(session) == [None] * len(heard_intents(session)), (name, turns)
    assert {e.get("kind") for e in turns} <= {"noinput", "nomatch", None}
    assert not any("account number" in text for text in bot_says(session)), (name, bot_says(session))


def test_clipped_speech_is_understood_or_a_nomatch(demo: Dialplan, speech: SpeechServices, nlu: NluEngine) -> None:
    clean = fixture_audio("en_balance").astype(np.float64)
    overdriven = np.clip(clean * 12, -32768, 32767).astype(np.int16)
    assert np.mean(np.abs(overdriven) == 32767) + np.mean(np.abs(overdriven) == 32768) > 0.05  # really clipped
    channel = WavChannel(lead(overdriven, 10), RATE, speed=4, tail_s=30)
    session = asyncio.run(converse(channel, english_only(demo), speech, nlu, until=answered))
    first = caller_turns(session)[0]
    assert first.get("intent") == "check_balance" or first.get("kind") == "nomatch", first
    if first.get("intent") == "check_balance":
        assert any("account number" in text for text in bot_says(session))


def test_a_caller_who_never_stops_is_cut_at_max_utterance_and_answered(
        demo: Dialplan, speech: SpeechServices, nlu: NluEngine) -> None:
    talk = trimmed(fixture_audio("en_long_talk"))
    nonstop = np.concatenate([talk] * int(np.ceil(24 * RATE / len(talk))))[:24 * RATE]
    onset_s = 10.0
    channel = WavChannel(lead(nonstop, onset_s), RATE, speed=2, tail_s=0)
    session = asyncio.run(converse(channel, english_only(demo), speech, nlu,
                                   until=lambda _: channel.bot_audio_after(onset_s + 1.0) is not None))
    first = caller_turns(session)[0]
    assert first.get("kind") is None and first["text"], first  # 15 s of speech were recognised, not dropped
    # The bot's answer started while the caller was still talking: the listen was closed by MaxUtterance.
    reply_s = channel.bot_audio_after(onset_s + 1.0)
    assert reply_s is not None and onset_s + 15 <= reply_s < onset_s + 24, channel.bot_segments


def test_mandarin_to_an_english_only_dialplan_is_a_nomatch(demo: Dialplan, speech: SpeechServices,
                                                          nlu: NluEngine) -> None:
    channel = WavChannel(lead(fixture_audio("zh_balance"), 10), RATE, speed=4, tail_s=30)
    session = asyncio.run(converse(channel, english_only(demo), speech, nlu, until=answered))
    first = caller_turns(session)[0]
    assert first.get("intent") is None, first
    assert first.get("kind") in ("nomatch", None), first
    said = bot_says(session)
    assert any(text in said for text in ("Sorry, I didn't get that.", "Please say balance or pay a bill.")), said


class CrashOnFirstTranscribe:
    """Real speech services whose first recognition kills the ASR worker process (SIGKILL) mid-job."""

    def __init__(self, services: SpeechServices, pool: SpeechWorkerPool) -> None:
        self.services = services
        self.pool = pool
        self.killed: list[int] = []
        self.multilingual = services.multilingual

    async def synthesize(self, text: str, lang: str | None, rate: int) -> np.ndarray:
        return await self.services.synthesize(text, lang, rate)

    async def transcribe(self, pcm16k: np.ndarray, lang: str | None, likely: str | None = None,
                         hints: Sequence[str] = ()) -> Utterance:
        if not self.killed:
            pid = self.pool.worker_pids()[0]
            assert pid is not None
            job = asyncio.ensure_future(self.services.transcribe(pcm16k, lang))
            await asyncio.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
            self.killed.append(pid)
            return await job
        return await self.services.transcribe(pcm16k, lang)


def test_dtmf_carries_the_call_after_the_asr_worker_crashes(demo: Dialplan, nlu: NluEngine, tmp_path: Path) -> None:
    async def scenario() -> tuple[DialplanSession, WavChannel, CrashOnFirstTranscribe, int]:
        async with SpeechWorkerPool(1, asr_models=(ASR_MODEL,)) as own_pool:
            speech = CrashOnFirstTranscribe(
                SpeechServices(own_pool, PromptCache(tmp_path / "prompts"), asr_model=ASR_MODEL), own_pool)
            # One utterance without inner pauses: the killed decode is the one the turn needs (a decode at a pause
            # the caller talks through is discarded, so a crash there costs the turn nothing).
            caller = lead(fixture_audio("en_return_item"), 10)
            # Keys pressed well after the failed turn's reprompt started (caller timeline seconds).
            channel = WavChannel(caller, RATE, speed=2, dtmf=[(28.0, "1")], tail_s=30)
            session = await converse(channel, english_only(demo), speech, nlu)
            return session, channel, speech, own_pool.crashes

    session, channel, speech, crashes = asyncio.run(scenario())
    assert speech.killed and crashes == 1
    assert session.engine_failures == 1
    turns = caller_turns(session)
    assert turns[0]["kind"] == "asr_failed", turns
    keys = [e for e in turns if e.get("kind") == "dtmf"]
    assert keys and keys[0]["text"] == "1", turns
    said = bot_says(session)
    after_failure = said[said.index("Sorry, I didn't get that."):]  # the NoMatch reprompt, then the keys' path
    assert any("account number" in text for text in after_failure), said
