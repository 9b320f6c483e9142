"""A callback's live lines (its call's session long gone) are judged by the policies of the dialplan the call ran,
read from the call's record (real SQLite store through the journal), and written to that record; the bridge is
judged by the timed rules (dead air) from the moment it is followed until the live transcript finishes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voicebot.compliance.alerts import QualityAlert
from voicebot.calls.quality_watch import QualityTicker, followed_call_sink
from voicebot.handoff.live_asr import LiveAsr
from voicebot.handoff.live_transcript import BridgedCall, LiveTranscripts, QueueFollow
from voicebot.compliance.lint import DEFAULT_POLICY_DIR, load_policies
from voicebot.records.journal import CallJournal
from voicebot.records.store import SqliteRecordStore

AGENT_LINE = {"t": 100.0, "who": "agent", "text": "This fund has guaranteed returns.", "start": 98.0, "live": True}


def test_a_followed_calls_lines_are_judged_by_the_policies_of_the_dialplan_it_ran(tmp_path: Path) -> None:
    journal = CallJournal(SqliteRecordStore(tmp_path / "calls.sqlite3"))
    for call_id, dialplan in (("c-fin", "finance"), ("c-shop", "ecommerce")):
        journal.start(call_id, caller="****0100", dialplan=dialplan)
        journal.end(call_id, outcome="callback", dialplan=dialplan)
    assert journal.flush()
    policies = load_policies(DEFAULT_POLICY_DIR)
    alerts: dict[str, list[QualityAlert]] = {}
    for call_id in ("c-fin", "c-shop", "c-unknown"):
        alerts[call_id] = []
        sink = followed_call_sink(journal.dialplan_of(call_id), policies, journal.sink(call_id),
                                  alerts[call_id].append)
        sink(dict(AGENT_LINE))
    assert journal.flush()
    assert journal.dialplan_of("c-fin") == "finance" and journal.dialplan_of("c-unknown") == ""
    # The finance call's follow-up is held to finance's rules; the shop's and an unknown call's are not.
    assert [(a.kind, a.rule, a.policy, a.speaker) for a in alerts["c-fin"]] == [
        ("forbidden_phrase", "guaranteed returns", "finance", "agent")]
    assert alerts["c-shop"] == [] and alerts["c-unknown"] == []
    kinds = [e.kind for e in journal.store.events("c-fin")]  # type: ignore[union-attr]
    assert "agent" in kinds and "quality" in kinds
    journal.close()


async def never_heard(pcm16k: np.ndarray, lang: str | None) -> str:
    raise AssertionError("nothing is recognised in this test")


@pytest.mark.asyncio
async def test_a_followed_calls_bridge_is_judged_for_dead_air_on_the_ticker_until_it_finishes() -> None:
    now = [1000.0]
    ticker = QualityTicker(clock=lambda: now[0], every_s=0.01)  # the server's is the process-wide one, in real time
    recorded: list[dict[str, Any]] = []
    alerts: list[QualityAlert] = []
    flagged = asyncio.Event()

    def alert(raised: QualityAlert) -> None:
        alerts.append(raised)
        flagged.set()

    sink = followed_call_sink("finance", load_policies(DEFAULT_POLICY_DIR), recorded.append, alert, ticker=ticker)
    follower = LiveTranscripts(LiveAsr(never_heard, lambda: False), follow=lambda queue: QueueFollow(True),
                               sink_for=lambda call: sink, publisher=lambda: None)
    live = follower.start_call(BridgedCall("c-fin", "support", "a1", "en-US", "sip"))
    assert live is not None and ticker.watched == 1
    now[0] += 21.0  # nobody said a word on the bridge for longer than finance's max_silence_s (20 s)
    await asyncio.wait_for(flagged.wait(), 10)
    assert [(a.kind, a.rule) for a in alerts] == [("long_silence", "max_silence_s")]
    assert [e["kind"] for e in recorded if e.get("event") == "quality"] == ["long_silence"]
    await live.finish()  # the callback ended: its check leaves the ticker
    assert ticker.watched == 0
    await follower.asr.close()
