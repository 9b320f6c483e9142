"""Conversation analytics: SQL over the call records (voicebot/records/store.py). Pure queries, no I/O of their own
beyond the connection they are given.

The questions a contact-center manager asks every week:
- containment: calls the bot finished by itself (ended by the dialplan with `completed`, never queued/transferred);
- transfers to people, abandonment (the caller hung up: in the bot, or while waiting in a queue) and callbacks;
- where callers struggle: nomatch / noinput per node, the node funnel and where calls were left;
- what callers ask: top intents and the share nobody understood (no intent or `out_of_scope`);
- per language.
Filters: dialplan, a [since, until) time range (epoch seconds), language. The same queries run on the embedded
SQLite store and on the cluster's PostgreSQL (voicebot/records/postgres.py).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["AnalyticsFilter", "report", "report_csv"]

_CLASSIFIED = """
WITH scoped AS (
    SELECT c.call_id, c.dialplan, c.node, c.outcome, c.ended_at,
           COALESCE((SELECT {j:lang} FROM call_events e
                     WHERE e.call_id = c.call_id AND e.kind = 'language' ORDER BY e.seq DESC LIMIT 1), '') AS lang,
           EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.call_id AND e.kind = 'queue_joined') AS queued,
           EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.call_id
                   AND e.kind IN ('agent_answered', 'transferred')) AS to_person,
           EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.call_id AND e.kind = 'caller_hangup') AS left_early
    FROM calls c
    WHERE c.started_at >= CAST(:since AS DOUBLE PRECISION) AND c.started_at < CAST(:until AS DOUBLE PRECISION)
      AND (CAST(:dialplan AS TEXT) IS NULL OR c.dialplan = CAST(:dialplan AS TEXT))
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
WHERE (CAST(:lang AS TEXT) IS NULL OR lang = CAST(:lang AS TEXT)
       OR (lang = '' AND CAST(:lang AS TEXT) = CAST(:default_lang AS TEXT)))
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


class _Sql:
    """Runs the neutral queries on SQLite (json_extract, :name) or PostgreSQL (->>, %(name)s)."""

    def __init__(self, db: Any, dialect: str) -> None:
        if dialect not in ("sqlite", "postgres"):
            raise ValueError(f"dialect must be sqlite or postgres, got {dialect!r}")
        self.db, self.dialect = db, dialect

    def text(self, sql: str) -> str:
        if self.dialect == "sqlite":
            sql = re.sub(r"\{j:(\w+)\}", r"json_extract(e.data, '$.\1')", sql)
            sql = re.sub(r"\{n:(\w+)\}", r"json_extract(n.data, '$.\1')", sql)
            return sql.replace("{jc:node}", "json_extract(e.data, '$.node')")
        sql = re.sub(r"\{j:(\w+)\}", r"(e.data->>'\1')", sql)
        sql = re.sub(r"\{n:(\w+)\}", r"(n.data->>'\1')", sql)
        sql = sql.replace("{jc:node}", "(e.data->>'node')")
        return re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql)

    def all(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        cursor = self.db.execute(self.text(sql), params or {})
        return [tuple(row) for row in cursor.fetchall()]

    def run(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self.db.execute(self.text(sql), params or {})


def report(db: Any, scope: AnalyticsFilter = AnalyticsFilter(), *, top: int = 10,
           dialect: str = "sqlite") -> dict[str, Any]:
    """Every figure of the analytics page for `scope`, as plain JSON-able data. `db`: a sqlite3 or psycopg
    connection (`dialect` says which)."""
    sql = _Sql(db, dialect)
    params = {**scope.params(), "top": top}
    sql.run("DROP TABLE IF EXISTS classified")
    sql.run(f"CREATE TEMP TABLE classified AS {_CLASSIFIED}", params)
    total = int(sql.all("SELECT COUNT(*) FROM classified")[0][0])
    classes = {row[0]: int(row[1]) for row in sql.all("SELECT class, COUNT(*) FROM classified GROUP BY class")}
    rates = {name: _rate(count, total) for name, count in classes.items()}
    turn_kinds = {row[0]: int(row[1]) for row in sql.all(
        "SELECT e.kind, COUNT(*) FROM call_events e JOIN classified c ON c.call_id = e.call_id "
        "WHERE e.kind IN ('caller', 'nomatch', 'noinput') GROUP BY e.kind")}
    hot_spots = [
        {"dialplan": row[0], "node": row[1], "nomatch": int(row[2]), "noinput": int(row[3])}
        for row in sql.all(
            "SELECT c.dialplan, {jc:node} AS at_node, SUM(CASE WHEN e.kind = 'nomatch' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN e.kind = 'noinput' THEN 1 ELSE 0 END) FROM call_events e "
            "JOIN classified c ON c.call_id = e.call_id WHERE e.kind IN ('nomatch', 'noinput') "
            "GROUP BY c.dialplan, {jc:node} ORDER BY COUNT(*) DESC, 2 LIMIT :top", params)]
    funnel = [
        {"dialplan": row[0], "node": row[1], "calls": int(row[2]), "left_here": int(row[3])}
        for row in sql.all(
            "SELECT c.dialplan, {jc:node} AS at_node, COUNT(DISTINCT e.call_id), "
            "COUNT(DISTINCT CASE WHEN c.node = {jc:node} "
            "AND c.class IN ('abandoned_in_bot', 'abandoned_in_queue') THEN e.call_id END) "
            "FROM call_events e JOIN classified c ON c.call_id = e.call_id WHERE e.kind = 'node' "
            "GROUP BY c.dialplan, {jc:node} ORDER BY COUNT(DISTINCT e.call_id) DESC, 2")]
    heard = [(row[0], int(row[1])) for row in sql.all(
        "SELECT COALESCE({j:intent}, '') AS intent, COUNT(*) FROM call_events e "
        "JOIN classified c ON c.call_id = e.call_id WHERE e.kind = 'caller' "
        "AND COALESCE({j:kind}, '') NOT IN ('dtmf', 'nomatch') "
        "GROUP BY COALESCE({j:intent}, '') ORDER BY COUNT(*) DESC, 1")]
    spoken = sum(count for _, count in heard)
    not_understood = sum(count for intent, count in heard if intent in ("", "out_of_scope"))
    languages = {row[0]: int(row[1]) for row in sql.all(
        "SELECT CASE WHEN lang = '' THEN CAST(:default_lang AS TEXT) ELSE lang END, COUNT(*) FROM classified "
        "GROUP BY 1", params)}
    return {
        "scope": {k: v for k, v in scope.params().items() if k != "default_lang"},
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
