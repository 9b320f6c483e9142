"""A bridged call followed live: real VAD segmentation of both legs' frames (as the bridge's tap sees them), a
stand-in recogniser, the real redactor, the real quality checks and the real assist logic."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from voicebot.calls.quality_watch import quality_sink
from voicebot.compliance.lint import DEFAULT_POLICY_DIR, load_policies, policies_for
from voicebot.compliance.quality import LiveQualityCheck, QualityAlert
from voicebot.handoff.assist import AgentAssist
from voicebot.handoff.live_asr import LiveAsr
from voicebot.handoff.live_transcript import BridgedCall, LiveCall, LiveTranscripts, QueueFollow
from voicebot.speech.resample import resample
from voicebot.speech.segmenter import StreamSegmenter

FIXTURES = Path(__file__).resolve().parents[1] / "audio_fixtures"


def fixture(name: str, rate: int = 8000) -> np.ndarray:
    audio, fixture_rate = soundfile.read(str(FIXTURES / f"{name}.wav"), dtype="int16")
    return audio if fixture_rate == rate else resample(audio, fixture_rate, rate)


def frames(audio: np.ndarray, rate: int) -> list[np.ndarray]:
    step = rate // 50  # 20 ms, as the relay delivers them
    return [audio[i:i + step] for i in range(0, audio.size - step + 1, step)]


def silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(int(seconds * rate), np.int16)


def test_a_stream_of_talk_and_pauses_comes_out_as_one_segment_per_utterance() -> None:
    stream = np.concatenate([silence(0.5, 8000), fixture("en_balance"), silence(1.2, 8000), fixture("en_yes"),
                             silence(1.2, 8000)])
    segmenter = StreamSegmenter(8000)
    segments = [s for frame in frames(stream, 8000) for s in segmenter.feed(frame)]
    assert len(segments) == 2
    balance_s = fixture("en_balance").size / 8000
    assert abs(segments[0].duration_s - balance_s) < 0.8  # the words, a little pre-roll and trailing silence
    assert segments[0].audio.dtype == np.int16  # 16 kHz for the recogniser
    assert segments[0].duration_s < segments[0].ended_at_s < 0.5 + balance_s + 1.0  # ended after the words
    assert segments[1].ended_at_s > 0.5 + balance_s + 1.2


def test_silence_alone_gives_no_segment_even_after_the_no_input_time() -> None:
    segmenter = StreamSegmenter(48000)
    assert [s for frame in frames(silence(70, 48000), 48000) for s in segmenter.feed(frame)] == []


class Desk:
    """The agent desktop and supervisor sockets (AgentHub's two methods)."""

    def __init__(self) -> None:
        self.agent: list[dict[str, Any]] = []
        self.supervisors: list[dict[str, Any]] = []

    async def send_agent(self, agent_id: str, message: dict[str, Any]) -> None:
        self.agent.append({"to": agent_id, **message})

    async def alert_supervisors(self, message: dict[str, Any]) -> None:
        self.supervisors.append(message)


class Article:
    def __init__(self, article_id: str, title: str) -> None:
        self.meta = type("Meta", (), {"id": article_id, "version": 2, "title": title, "tags": ["refunds"],
                                      "short_answer": f"{title}: within 3 working days."})()


class Hit:
    def __init__(self, article: Article, score: float) -> None:
        self.article, self.score = article, score


@pytest.mark.asyncio
async def test_both_legs_are_transcribed_labelled_redacted_recorded_checked_and_pushed() -> None:
    said = iter(["Hi, my card is 4111 1111 1111 1111 and I want to know when my refund arrives.",
                 "Sure. By the way, your password is swordfish."])

    async def transcribe(audio: np.ndarray, lang: str | None) -> str:
        assert audio.dtype == np.int16 and lang == "en-US"
        return next(said)

    recorded: list[dict[str, Any]] = []
    alerts: list[QualityAlert] = []
    check = LiveQualityCheck(policies_for("ecommerce", load_policies(DEFAULT_POLICY_DIR)))
    checked = quality_sink(check, recorded.append, alerts.append)
    written: list[dict[str, Any]] = []

    def sink(entry: dict[str, Any]) -> None:
        written.append(entry)
        checked(entry)

    desk = Desk()
    searched: list[str] = []

    async def search(query: str, lang: str) -> list[Hit]:
        searched.append(query)
        return [Hit(Article("shop-refund-timing-en", "When refunds arrive"), 0.62),
                Hit(Article("shop-delivery-times-en", "Delivery times"), 0.12)]

    asr = LiveAsr(transcribe, lambda: False, poll_s=0.01)
    live = LiveCall(BridgedCall("call-1", "ecommerce", "a1", "en-US", "webrtc"), asr, sink, desk,
                    AgentAssist(min_score=0.3), search)
    # The caller (leg a, 8 kHz SIP) speaks, then the agent (leg b, 48 kHz WebRTC) answers.
    caller = np.concatenate([fixture("en_balance"), silence(1.2, 8000)])
    agent = np.concatenate([fixture("en_agent", 48000), silence(1.2, 48000)])
    asr.start()
    for frame in frames(caller, 8000):
        live.on_audio("a", frame, 8000)
        live.on_audio("b", np.zeros(960, np.int16), 48000)
    async with asyncio.timeout(5):
        while live.lines < 1:
            await asyncio.sleep(0.01)
    for frame in frames(agent, 48000):
        live.on_audio("b", frame, 48000)
    async with asyncio.timeout(5):
        while live.lines < 2:
            await asyncio.sleep(0.01)
    live.close()
    await asr.close()

    lines = [(e["who"], e["text"]) for e in recorded if e.get("live")]
    assert [who for who, _ in lines] == ["caller", "agent"]
    assert "4111 1111 1111 1111" not in lines[0][1] and "refund" in lines[0][1]  # the one redactor masked it
    assert all(e["start"] < e["t"] for e in recorded if e.get("live"))
    # Each utterance's voice activity went to the checks (not the record) as it ended, before its words.
    spoke = [(e["spoke"], e["start"], e["t"]) for e in written if "spoke" in e]
    assert spoke == [(e["who"], e["start"], e["t"]) for e in recorded if e.get("live")]
    assert [e.get("spoke") or e.get("who") for e in written if "spoke" in e or e.get("live")][:2] == ["caller", "caller"]
    assert not any("spoke" in e for e in recorded)
    # The agent's forbidden phrase: a quality event of the record and an alert, as for a bot line.
    assert [(a.kind, a.rule, a.speaker) for a in alerts] == [("forbidden_phrase", "your password is", "agent")]
    assert any(e.get("event") == "quality" and e["speaker"] == "agent" for e in recorded)
    # Pushed: both lines to the agent and to the supervisors; the card (above min_score only) to the agent.
    transcript = [(m["who"], m["to"]) for m in desk.agent if m["type"] == "transcript"]
    assert transcript == [("caller", "a1"), ("agent", "a1")]
    assert [(m["who"], m["agent"]) for m in desk.supervisors] == [("caller", "a1"), ("agent", "a1")]
    cards = [m["cards"] for m in desk.agent if m["type"] == "assist"]
    assert [[c["id"] for c in shown] for shown in cards] == [["shop-refund-timing-en"]]
    assert searched == [lines[0][1]]  # the caller's redacted words, never the agent's
    assert any(e.get("event") == "assist" and e["articles"][0]["version"] == 2 for e in recorded)


def test_cards_are_above_the_score_and_each_article_is_shown_once_per_call() -> None:
    assist = AgentAssist(min_score=0.3, max_cards=2)
    refund, returns = Article("refund", "Refunds"), Article("returns", "Returns")
    assert [c["id"] for c in assist.cards([Hit(refund, 0.5), Hit(returns, 0.29)])] == ["refund"]
    assert [c["id"] for c in assist.cards([Hit(refund, 0.9), Hit(returns, 0.4)])] == ["returns"]
    assert assist.cards([Hit(refund, 0.9)]) == []


def test_a_short_caller_line_is_searched_with_the_one_before() -> None:
    assist = AgentAssist()
    assert assist.query("I returned the shoes last week") == "I returned the shoes last week"
    assert assist.query("the refund?") == "I returned the shoes last week the refund?"
    assert assist.query("退款什么时候到账") == "退款什么时候到账"


@pytest.mark.asyncio
async def test_only_queues_that_turn_it_on_are_followed() -> None:
    asr = LiveAsr(lambda _a, _l: asyncio.sleep(0, ""), lambda: False)
    follow = {"support": QueueFollow(live_transcript=True, assist=False)}
    transcripts = LiveTranscripts(asr, follow=lambda q: follow.get(q, QueueFollow()), sink_for=lambda _c: print,
                                  publisher=lambda: None)
    assert transcripts.start_call(BridgedCall("c1", "sales", "a1", "en-US", "sip")) is None
    assert isinstance(transcripts.start_call(BridgedCall("c2", "support", "a1", "en-US", "sip")), LiveCall)
    await asr.close()


@pytest.mark.asyncio
async def test_the_shipped_queues_follow_ecommerce_and_banking_calls_with_their_own_knowledge() -> None:
    from voicebot.handoff.live_transcript import follow_bridged_calls
    from voicebot.queues.models import load_queues

    queues = load_queues(Path(__file__).resolve().parents[2] / "sip_config" / "queues.yaml")

    class Speech:
        def busy(self) -> bool:
            return False

        async def transcribe(self, pcm16k: np.ndarray, lang: str | None) -> Any:
            raise AssertionError("nothing is said here")

    assert follow_bridged_calls(queues, None, sink_for=lambda _c: print, publisher=lambda: None) is None
    follower = follow_bridged_calls(queues, Speech(), sink_for=lambda _c: print, publisher=lambda: None)
    assert follower is not None
    assert follower.follow("ecommerce") == QueueFollow(True, True, "ecommerce", 0.3)
    assert follower.follow("banking").assist_collection == "finance"
    assert follower.start_call(BridgedCall("c1", "cards", "a1", "en-US", "sip")) is None
    await follower.asr.close()


@pytest.mark.asyncio
async def test_finish_waits_for_the_line_in_flight_and_nothing_is_written_after_it() -> None:
    release = asyncio.Event()

    async def transcribe(audio: np.ndarray, lang: str | None) -> str:
        await release.wait()  # the recogniser is still working when the bridge ends
        return "I still need the refund for order A12."

    recorded: list[dict[str, Any]] = []
    asr = LiveAsr(transcribe, lambda: False, poll_s=0.01)
    live = LiveCall(BridgedCall("call-2", "ecommerce", "a1", "en-US", "webrtc"), asr, recorded.append)
    asr.start()
    for frame in frames(np.concatenate([fixture("en_balance"), silence(1.2, 8000)]), 8000):
        live.on_audio("a", frame, 8000)
    finishing = asyncio.ensure_future(live.finish(max_wait_s=5))
    await asyncio.sleep(0)
    assert not finishing.done()  # the caller's last line is still being recognised: the record stays open
    release.set()
    await asyncio.wait_for(finishing, 5)
    assert [e["who"] for e in recorded if e.get("live")] == ["caller"]  # it landed before finish returned
    await live.heard("agent", "A line recognised too late.", 0.0, 1.0)  # after the record closed
    assert [e["who"] for e in recorded if e.get("live")] == ["caller"] and live.dropped == 1
    await asr.close()
