"""A callback's live lines (its call's session long gone) are judged by the policies of the dialplan the call ran,
read from the call's record (real SQLite store through the journal), and written to that record."""

from __future__ import annotations

from pathlib import Path

from voicebot.compliance.alerts import QualityAlert
from voicebot.calls.quality_watch import followed_call_sink
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
