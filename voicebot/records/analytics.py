"""Conversation analytics: SQL over the call records (voicebot/records/store.py). Pure queries, no I/O of their own
beyond the connection they are given.

The questions a contact-center manager asks every week:
- containment: calls the bot finished by itself (ended by the dialplan with `completed`, never queued/transferred);
- transfers to people, abandonment (the caller hung up: in the bot, or while waiting in a queue) and callbacks;
- where callers struggle: nomatch / noinput per node, the node funnel and where calls were left;
- what callers ask: top intents and the share nobody understood (no intent or `out_of_scope`);
- per language.
Filters: dialplan, a [since, until) time range (epoch seconds), language.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from dataclasses import dataclass
from typing import Any

__all__ = ["AnalyticsFilter", "report", "report_csv"]

_CLASSIFIED = """
WITH scoped AS (
    SELECT c.call_id, c.dialplan, c.node, c.outcome, c.ended_at,
           COALESCE((SELECT json_extract(e.data, '$.lang') FROM call_events e
                     WHERE e.call_id = c.call_id AND e.kind = 'language' ORDER BY e.seq DESC LIMIT 1), '') AS lang,
           EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.call_id AND e.kind = 'queue_joined') AS queued,
           EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.call_id
                   AND e.kind IN ('agent_answered', 'transferred')) AS to_person,
           EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.call_id AND e.kind = 'caller_hangup') AS left_early
    FROM calls c
    WHERE c.started_at >= :since AND c.started_at < :until
      AND (:dialplan IS NULL OR c.dialplan = :dialplan)
)
SELECT call_id, dialplan, node, lang,
       CASE
           WHEN to_person THEN 'transferred'
           WHEN queued AND left_early THEN 'abandoned_in_queue'
           WHEN outcome = 'callback' THEN 'callback'
           WHEN queued THEN 'queued_not_answered'
           WHEN left_early THEN 'abandoned_in_bot'
           WHEN outcome = 'completed' THEN 'contained'
           WHEN ended_at IS NULL THEN 'in_progress_or_lost'
           ELSE 'other'
       END AS class
FROM scoped
WHERE (:lang IS NULL OR lang = :lang OR (lang = '' AND :lang = :default_lang))
"""


@dataclass(frozen=True)
class AnalyticsFilter:
    since: float = 0.0
    until: float = 1e12
    dialplan: str | None = None
    lang: str | None = None  # "en-US" / "zh-CN": the call's language after any switch
    default_lang: str = "en-US"  # calls that never switched language are in the dialplan's first language

    def params(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "dialplan": self.dialplan, "lang": self.lang,
                "default_lang": self.default_lang}


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def report(db: sqlite3.Connection, scope: AnalyticsFilter = AnalyticsFilter(), *, top: int = 10) -> dict[str, Any]:
    """Every figure of the analytics page for `scope`, as plain JSON-able data."""
    params = scope.params()
    db.execute("DROP TABLE IF EXISTS temp.classified")
    db.execute(f"CREATE TEMP TABLE classified AS {_CLASSIFIED}", params)
    total = db.execute("SELECT COUNT(*) FROM temp.classified").fetchone()[0]
    classes = dict(db.execute("SELECT class, COUNT(*) FROM temp.classified GROUP BY class").fetchall())
    rates = {name: _rate(count, total) for name, count in classes.items()}
    turn_kinds = dict(db.execute(
        "SELECT e.kind, COUNT(*) FROM call_events e JOIN temp.classified c USING (call_id) "
        "WHERE e.kind IN ('caller', 'nomatch', 'noinput') GROUP BY e.kind").fetchall())
    hot_spots = [
        {"dialplan": row[0], "node": row[1], "nomatch": row[2], "noinput": row[3]}
        for row in db.execute(
            "SELECT c.dialplan, json_extract(e.data, '$.node') AS at_node, SUM(e.kind = 'nomatch'), "
            "SUM(e.kind = 'noinput') FROM call_events e JOIN temp.classified c USING (call_id) "
            "WHERE e.kind IN ('nomatch', 'noinput') GROUP BY c.dialplan, at_node "
            "ORDER BY COUNT(*) DESC, at_node LIMIT ?", (top,))]
    funnel = [
        {"dialplan": row[0], "node": row[1], "calls": row[2], "left_here": row[3]}
        for row in db.execute(
            "SELECT c.dialplan, json_extract(e.data, '$.node') AS at_node, COUNT(DISTINCT e.call_id), "
            "COUNT(DISTINCT CASE WHEN c.node = json_extract(e.data, '$.node') "
            "AND c.class IN ('abandoned_in_bot', 'abandoned_in_queue') THEN e.call_id END) "
            "FROM call_events e JOIN temp.classified c USING (call_id) WHERE e.kind = 'node' "
            "GROUP BY c.dialplan, at_node ORDER BY COUNT(DISTINCT e.call_id) DESC, at_node")]
    heard = db.execute(
        "SELECT COALESCE(json_extract(e.data, '$.intent'), '') AS intent, COUNT(*) FROM call_events e "
        "JOIN temp.classified c USING (call_id) WHERE e.kind = 'caller' "
        "AND COALESCE(json_extract(e.data, '$.kind'), '') NOT IN ('dtmf', 'nomatch') "
        "GROUP BY intent ORDER BY COUNT(*) DESC, intent").fetchall()
    spoken = sum(count for _, count in heard)
    not_understood = sum(count for intent, count in heard if intent in ("", "out_of_scope"))
    languages = dict(db.execute(
        "SELECT CASE WHEN lang = '' THEN :default_lang ELSE lang END, COUNT(*) FROM temp.classified "
        "GROUP BY 1", params).fetchall())
    return {
        "scope": {k: v for k, v in params.items() if k != "default_lang"},
        "calls": total,
        "outcomes": classes,
        "rates": rates,
        "containment_rate": rates.get("contained", 0.0),
        "turns": {"spoken": turn_kinds.get("caller", 0), "nomatch": turn_kinds.get("nomatch", 0),
                  "noinput": turn_kinds.get("noinput", 0)},
        "hot_spots": hot_spots,
        "funnel": funnel,
        "top_intents": [{"intent": intent, "count": count} for intent, count in heard if intent][:top],
        "not_understood_share": _rate(not_understood, spoken),
        "languages": languages,
    }


def report_csv(data: dict[str, Any]) -> str:
    """The report as CSV rows: section, key, value (one file a spreadsheet opens)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "key", "value"])
    writer.writerow(["calls", "total", data["calls"]])
    for name, count in sorted(data["outcomes"].items()):
        writer.writerow(["outcome", name, count])
        writer.writerow(["rate", name, data["rates"][name]])
    writer.writerow(["turns", "not_understood_share", data["not_understood_share"]])
    for spot in data["hot_spots"]:
        writer.writerow(["hot_spot", f"{spot['dialplan']}/{spot['node']}", f"{spot['nomatch']}/{spot['noinput']}"])
    for step in data["funnel"]:
        writer.writerow(["funnel", f"{step['dialplan']}/{step['node']}", f"{step['calls']}/{step['left_here']}"])
    for item in data["top_intents"]:
        writer.writerow(["intent", item["intent"], item["count"]])
    for lang, count in sorted(data["languages"].items()):
        writer.writerow(["language", lang, count])
    return out.getvalue()
