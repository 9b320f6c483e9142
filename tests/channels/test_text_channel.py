"""TextChannel: a scripted text caller through the real DialplanSession (demo dialplan, demo NLU, no models)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from voicebot.channels.base import ChannelEvent
from voicebot.channels.text import TextChannel, parse_line
from voicebot.calls.conversation import DialplanSession
from voicebot.dialplan.events import CallContext
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.loader import load_dialplan
from voicebot.dialplan.schema import Dialplan
from voicebot.nlu.base import NluEngine, load_nlu

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo() -> Dialplan:
    return load_dialplan(REPO / "dialplans" / "demo.yaml")


@pytest.fixture(scope="module")
def nlu() -> NluEngine:
    engine = load_nlu(REPO / "nlu_models" / "demo")
    engine.parse("hello", "en")
    return engine


async def simulate(channel: TextChannel, plan: Dialplan, nlu: NluEngine) -> DialplanSession:
    session = DialplanSession(channel, Interpreter(plan), CallContext(caller="5550100", channel="text"),
                              channel.speech, nlu)
    await asyncio.wait_for(session.run(), 45)
    return session


def caller_entries(session: DialplanSession) -> list[dict]:
    return [e for e in session.transcript.entries if e["who"] == "caller"]


@pytest.mark.asyncio
async def test_a_said_line_is_heard_with_its_intent_and_keys_are_collected(demo: Dialplan, nlu: NluEngine) -> None:
    channel = TextChannel(["I would like to check my balance please", "#123456"])
    session = await simulate(channel, demo, nlu)
    callers = caller_entries(session)
    assert callers[0]["text"] == "I would like to check my balance please"
    assert callers[0]["intent"] == "check_balance"
    assert callers[1] == {**callers[1], "text": "[DIGITS 6]", "kind": "dtmf"}  # keyed digits are masked in records
    said = channel.said
    assert said[:2] == ["Welcome to Acme Telecom.", "You can say balance, pay a bill, or agent."]
    assert "Please say or key in your six digit account number." in said
    assert any("1 2 3 4 5 6" in text or "123456" in text for text in said[said.index(
        "Please say or key in your six digit account number."):]), said  # read back for confirmation
    assert channel.ended == "caller hangup"


@pytest.mark.asyncio
async def test_a_silent_turn_is_a_noinput_and_agent_goes_to_the_fallback(demo: Dialplan, nlu: NluEngine) -> None:
    channel = TextChannel(["...", "agent please"], think_s=0.1)
    session = await simulate(channel, demo, nlu)
    kinds = [e.get("kind") or e.get("intent") for e in caller_entries(session)]
    assert kinds == ["noinput", "agent"]
    assert "Sorry, I didn't hear you." in channel.said
    spoken = " ".join(channel.said)  # prompts may be synthesised sentence by sentence
    assert spoken.endswith("Let me get you an agent. All our agents are busy. Please call again later."), spoken
    assert session.outcome == "no_agents" and channel.ended == "bot hangup"


def test_script_lines_parse_and_bad_keys_are_named() -> None:
    assert parse_line(" hello ") == ("say", "hello")
    assert parse_line("#12 34#") == ("keys", "1234#")
    assert parse_line("...") == ("silent", "") and parse_line("") == ("silent", "")
    with pytest.raises(ValueError, match="keypad digits"):
        parse_line("#12x")


class QueueEventsChannel(TextChannel):
    """next_event as SipChannel and WebRtcChannel implement it: asyncio.wait_for(queue.get(), timeout)."""

    def __init__(self, script: list[str]) -> None:
        super().__init__(script)
        self._queue: asyncio.Queue[ChannelEvent] = asyncio.Queue()
        self._inbox.put = self._queue.put_nowait  # type: ignore[method-assign]

    async def next_event(self, timeout: float | None) -> ChannelEvent | None:
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None


@pytest.mark.asyncio
async def test_no_digit_is_lost_with_a_queue_based_channel(demo: Dialplan, nlu: NluEngine) -> None:
    channel = QueueEventsChannel(["I would like to check my balance please", "#123456"])
    session = await simulate(channel, demo, nlu)
    keys = [e["text"] for e in caller_entries(session) if e.get("kind") == "dtmf"]
    assert keys[:1] == ["[DIGITS 6]"]  # six keys in the (masked) record...
    assert any("1 2 3 4 5 6" in text or "123456" in text for text in channel.said)  # ...and all six read back


class LoopWatchingNlu:
    """The real demo NLU, noting the thread of each parse and how late a 10 ms loop timer ran meanwhile."""

    def __init__(self, engine: NluEngine) -> None:
        self.engine, self.threads = engine, []

    def parse(self, text: str, lang: str):  # type: ignore[no-untyped-def]
        import threading
        import time

        self.threads.append(threading.current_thread().name)
        time.sleep(1.0)  # a slow parse (a remote Rasa server): the event loop must go on meanwhile
        return self.engine.parse(text, lang)


@pytest.mark.asyncio
async def test_nlu_parses_run_off_the_event_loop_so_a_slow_parse_stalls_no_call(demo: Dialplan,
                                                                                  nlu: NluEngine) -> None:
    loop = asyncio.get_running_loop()
    worst_gap = 0.0

    async def ticker() -> None:
        nonlocal worst_gap
        last = loop.time()
        while True:
            await asyncio.sleep(0.01)
            worst_gap, last = max(worst_gap, loop.time() - last), loop.time()

    watching = LoopWatchingNlu(nlu)
    ticks = asyncio.ensure_future(ticker())
    try:
        session = await simulate(TextChannel(["I would like to check my balance please"]), demo, watching)
    finally:
        ticks.cancel()
    assert caller_entries(session)[0]["intent"] == "check_balance"
    assert watching.threads and all(name.startswith("nlu") for name in watching.threads)
    assert worst_gap < 0.5  # the 1 s parse never held the loop
