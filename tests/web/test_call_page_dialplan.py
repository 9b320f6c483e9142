"""A browser caller talks to the demo dialplan with real models (Whisper tiny.en, piper) over the call page.

Chromium's fake microphone says "Hi, I would like to check my account balance please." once; the bot must
understand it and ask for the account number. The bot's audio as sent to the browser is recorded server-side and
re-recognised with Whisper: it must contain "account number". Captions of both sides reach the page.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from voicebot.channels.webrtc import WebRtcChannel
from voicebot.calls.conversation import DialplanSession
from voicebot.dialplan.events import CallContext
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.loader import load_dialplan
from voicebot.nlu.base import load_nlu
from voicebot.speech.prompts import PromptCache
from voicebot.speech.services import SpeechServices
from voicebot.speech.workers import SpeechWorkerPool
from voicebot.web.captions import caption_observer

from .conftest import caller_wav
from .test_call_page_browser import click, wait_for

REPO = Path(__file__).resolve().parents[2]
ASR_MODEL = "tiny.en"


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z]+", text.lower()))


@pytest.mark.timeout(120)
def test_browser_caller_asks_for_the_balance_and_hears_account_number(tmp_path: Path, page_server: Callable,
                                                                      chromium: Callable) -> None:
    plan = load_dialplan(REPO / "dialplans" / "demo.yaml")
    plan = plan.model_copy(update={"languages": ["en-US"], "auto_language": False})  # English-only hotline
    nlu = load_nlu(REPO / "nlu_models" / "demo")
    nlu.parse("hello", "en")  # train before the call
    state: dict[str, Any] = {"sent": [], "prompt_start": None}

    async def on_call(channel: WebRtcChannel) -> None:  # type: ignore[override]
        session = DialplanSession(channel, Interpreter(plan), CallContext(
            caller="5550100", channel="webrtc", call_id=channel.call_id), state["speech"], nlu)

        def caption(who: str, text: str) -> None:
            if who == "bot" and "account number" in text and state["prompt_start"] is None:
                state["prompt_start"] = len(state["sent"])  # the prompt's audio is queued after this frame
            channel.caption(who, text)

        session.transcript.events.subscribe(caption_observer(caption))
        channel.on_sent_audio(state["sent"].append)
        state.update(session=session, channel=channel)
        await asyncio.wait_for(session.run(), 100)

    server = page_server(on_call)
    pool = SpeechWorkerPool(1, asr_models=(ASR_MODEL,))
    server.run(pool.start(), timeout=90)
    try:
        state["speech"] = SpeechServices(pool, PromptCache(tmp_path / "prompts"), asr_model=ASR_MODEL)
        driver = chromium(caller_wav(tmp_path, "en_balance", pad_s=60))  # says it once, then a minute of silence
        driver.get(server.server.url)
        click(driver, "#call")
        wait_for(driver, "window.voicebotCall.state === 'connected'", 20, "the call to connect")
        try:
            wait_for(driver, "window.voicebotCall.captions.some(c => c.text.includes('account number'))", 60,
                     "the bot to ask for the account number")
        except AssertionError as exc:  # say what the bot heard (the page only captions the bot's side then)
            session = state.get("session")
            heard_lines = [e for e in session.transcript.entries if e.get("who") != "bot"] if session else []
            raise AssertionError(f"{exc}\nserver transcript (caller/events): {heard_lines}") from None
        channel = state["channel"]
        deadline = time.monotonic() + 15
        time.sleep(0.5)
        while channel.playing and time.monotonic() < deadline:
            time.sleep(0.1)
        driver.save_screenshot(str(tmp_path / "call_page_dialplan.png"))
        click(driver, "#hangup")
        captions = driver.execute_script("return window.voicebotCall.captions;")

        reply = np.concatenate(state["sent"][state["prompt_start"]:])
        heard = server.run(state["speech"].transcribe(reply, "en"), timeout=30)
    finally:
        server.run(pool.close(), timeout=30)

    assert "account number" in words(heard.text), heard.text
    caller_lines = [c["text"] for c in captions if c["who"] == "caller"]
    assert any("balance" in words(line) for line in caller_lines), captions
    assert any(c["who"] == "bot" and "Welcome to Acme Telecom" in c["text"] for c in captions), captions
    intents = [e.get("intent") for e in state["session"].transcript.entries if e["who"] == "caller"]
    assert "check_balance" in intents
