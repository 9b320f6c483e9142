"""A bridged call followed live tells the call's quality checks so (a `live_transcript` note through the call's
sink): from then on silence on the bridge is judged; a queue not followed live writes nothing and is not judged."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from voicebot.compliance.alerts import QualityAlert
from voicebot.calls.quality_watch import quality_sink
from voicebot.compliance.lint import DEFAULT_POLICY_DIR, load_policies, policies_for
from voicebot.compliance.quality import LiveQualityCheck
from voicebot.handoff.live_asr import LiveAsr
from voicebot.handoff.live_transcript import BridgedCall, LiveTranscripts, QueueFollow


async def never_heard(pcm16k: np.ndarray, lang: str | None) -> str:
    raise AssertionError("nothing is recognised in this test")


@pytest.mark.asyncio
@pytest.mark.parametrize("followed", [True, False])
async def test_a_followed_bridge_is_judged_for_silence_and_an_unfollowed_one_is_not(followed: bool) -> None:
    recorded: list[dict[str, Any]] = []
    alerts: list[QualityAlert] = []
    check = LiveQualityCheck(policies_for("finance", load_policies(DEFAULT_POLICY_DIR)))
    check.answered(0.0)
    check.agent_answered(10.0)
    sink = quality_sink(check, recorded.append, alerts.append)
    follower = LiveTranscripts(LiveAsr(never_heard, lambda: False), follow=lambda queue: QueueFollow(followed),
                               sink_for=lambda call_id: sink, publisher=lambda: None)
    live = follower.start_call(BridgedCall("c1", "sales", "a1", "en-US", "sip"))
    assert (live is not None) is followed
    assert [e.get("queue") for e in recorded if e.get("event") == "live_transcript"] == (["sales"] if followed else [])
    assert [a.kind for a in check.tick(30.5)] == (["long_silence"] if followed else [])
    await follower.asr.close()
