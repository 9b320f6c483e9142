"""What the caller said reaches the call record with the figures the analytics draw (issue 18): each recognised turn
carries its ASR confidence, and each turn the bot answered a `turn` event with its reply latency (end of the
caller's speech to the first reply audio, as the bot measured it). Real Whisper tiny.en and piper over a WavChannel,
through the journal into a SQLite record store; the report's histograms count exactly those events."""

from __future__ import annotations

import asyncio
import sqlite3
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
from voicebot.records.analytics import report
from voicebot.records.journal import CallJournal
from voicebot.records.store import SqliteRecordStore
from voicebot.speech.prompts import PromptCache
from voicebot.speech.services import SpeechServices
from voicebot.speech.workers import SpeechWorkerPool
from voicebot.yamlsrc import load_yaml_text, validate

pytestmark = pytest.mark.timeout(180)

FIXTURES = Path(__file__).resolve().parents[1] / "audio_fixtures"
ASR_MODEL = "tiny.en"
PLAN = """
dialplan: turn-records
nlu: demo
start: greet
nodes:
  greet:
    say: "Say balance."
    listen:
      intents: {check_balance: bye}
      end_silence_ms: 600
  bye:
    say: "Your balance is ten dollars. Goodbye."
    hangup: true
"""


def test_turns_record_confidence_and_reply_latency(pool: SpeechWorkerPool, nlu: NluEngine, tmp_path: Path) -> None:
    data, lines = load_yaml_text(textwrap.dedent(PLAN), "turn-records.yaml")
    plan = validate(Dialplan, data, lines, "turn-records.yaml")
    speech = SpeechServices(pool, PromptCache(tmp_path / "prompts"), asr_model=ASR_MODEL)
    quiet = np.zeros(int(1.5 * RATE), np.int16)
    caller = np.concatenate([quiet, load_caller_audio(FIXTURES / "en_balance.wav"), *[quiet] * 5])  # time to answer
    channel = WavChannel(caller, RATE, speed=1.0, tail_s=0)
    session = DialplanSession(channel, Interpreter(plan), CallContext(caller="5550100", channel="wav",
                                                                      call_id=channel.call_id), speech, nlu)
    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    journal = CallJournal(store)
    journal.start("c1", dialplan="turn-records", started_at=1_000_000.0)
    session.transcript.events.subscribe(journal.observer("c1"))

    async def run() -> None:
        await asyncio.wait_for(session.run(), 120)
        await channel.wait_closed()

    asyncio.run(run())
    journal.end("c1", outcome="completed")
    assert journal.flush()
    events = store.events("c1")
    heard = [e.data for e in events if e.kind == "caller"]
    assert [h.get("intent") for h in heard] == ["check_balance"], heard
    confidence = heard[0]["asr_confidence"]
    assert isinstance(confidence, float) and 0.3 <= confidence <= 1.0, heard
    turns = [e.data for e in events if e.kind == "turn"]
    assert len(turns) == 1, turns
    measured = session.turns[0]
    assert turns[0]["reply_ms"] == round(measured.endpoint_ms + measured.tts_first_ms)
    assert 600 <= turns[0]["reply_ms"] < 10_000 and set(turns[0]) == {"event", "reply_ms", "asr_ms", "nlu_ms"}
    journal.close()

    figures = report(sqlite3.connect(str(tmp_path / "calls.sqlite3")))
    tenth = min(9, int(round(confidence * 100)) // 10)
    assert figures["asr_confidence"]["by_lang"] == {"en-US": [int(i == tenth) for i in range(10)]}
    assert sum(figures["turn_latency_ms"]["by_lang"]["en-US"]) == 1
