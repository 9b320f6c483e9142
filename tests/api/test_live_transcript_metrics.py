"""Live transcript lines written and dropped, by reason, in /metrics: a bridged call's live transcript (the real
LiveTranscripts, LiveAsr queue and VAD segmentation of fixture speech) while the speech workers are saturated
(queue_full, then too_old), then free (a line), then after the record closed (record_closed)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
from aiohttp.test_utils import TestClient, TestServer

from tests.api.conftest import bearer
from voicebot.api.app import EXTRA_METRICS_KEY, create_app
from voicebot.handoff.live_asr import LiveAsr
from voicebot.handoff.live_transcript import BridgedCall, LiveTranscripts, QueueFollow
from voicebot.speech.resample import resample

pytestmark = pytest.mark.asyncio
FIXTURES = Path(__file__).resolve().parents[1] / "audio_fixtures"


def utterance() -> list[np.ndarray]:
    """One caller utterance and the silence that ends it, as the relay's 20 ms frames at 8 kHz."""
    audio, rate = soundfile.read(str(FIXTURES / "en_yes.wav"), dtype="int16")
    audio = resample(audio, rate, 8000) if rate != 8000 else audio
    stream = np.concatenate([audio, np.zeros(int(1.2 * 8000), np.int16)])
    return [stream[i:i + 160] for i in range(0, stream.size - 159, 160)]


def sample(metrics: str, name: str, labels: str = "") -> float:
    found = re.search(rf"^{name}{re.escape(labels)} (\S+)$", metrics, re.M)
    assert found, f"{name}{labels} not in /metrics"
    return float(found.group(1))


async def test_dropped_live_lines_are_counted_by_reason_in_metrics(service, tokens, clock) -> None:  # type: ignore[no-untyped-def]
    store, secrets = tokens
    saturated = True
    now = [0.0]

    async def transcribe(audio: np.ndarray, lang: str | None) -> str:
        return "Yes, that is right."

    asr = LiveAsr(transcribe, lambda: saturated, max_pending=2, max_age_s=15.0, poll_s=0.01, clock=lambda: now[0])
    recorded: list[dict[str, object]] = []
    follower = LiveTranscripts(asr, follow=lambda _q: QueueFollow(live_transcript=True, assist=False),
                               sink_for=lambda _c: recorded.append, publisher=lambda: None)
    app = create_app(service, store, clock=clock)
    app[EXTRA_METRICS_KEY].append(follower.totals.prometheus)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        async def metrics() -> str:
            response = await client.get("/metrics", headers=bearer(secrets["supervisor"]))
            assert response.status == 200
            return await response.text()

        before = await metrics()
        for reason in ("queue_full", "too_old", "failed", "record_closed"):  # every reason, from the start
            assert sample(before, "voicebot_live_transcript_lines_dropped_total", f'{{reason="{reason}"}}') == 0
        live = follower.start_call(BridgedCall("c1", "support", "a1", "en-US", "sip"))
        assert live is not None
        # Every speech worker busy: three utterances, room for two; the oldest goes.
        for _ in range(3):
            for frame in utterance():
                live.on_audio("a", frame, 8000)
        assert asr.pending == 2
        # Still saturated 20 s later: the two waiting ones are too old once a worker frees up.
        now[0] += 20.0
        saturated = False
        async with asyncio.timeout(5):
            while asr.pending:
                await asyncio.sleep(0.01)
        for frame in utterance():  # a worker is free: this one is recognised and written
            live.on_audio("a", frame, 8000)
        async with asyncio.timeout(5):
            while live.lines < 1:
                await asyncio.sleep(0.01)
        await live.finish(max_wait_s=5)
        await live.heard("agent", "A line recognised after the record closed.", 0.0, 1.0)
        after = await metrics()
        await asr.close()
    drops = {reason: sample(after, "voicebot_live_transcript_lines_dropped_total", f'{{reason="{reason}"}}')
             for reason in ("queue_full", "too_old", "failed", "record_closed")}
    assert drops == {"queue_full": 1, "too_old": 2, "failed": 0, "record_closed": 1}
    assert live.dropped == 4  # the call's own count (its "live transcript ended" log line) agrees
    assert sample(after, "voicebot_live_transcript_lines_total") == 1
    assert sample(after, "voicebot_live_transcript_calls_total") == 1
    assert "# TYPE voicebot_live_transcript_lines_dropped_total counter" in after
    assert [e["who"] for e in recorded if e.get("live")] == ["caller"]
