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

from voicebot.records.summary import day_of

__all__ = ["AnalyticsFilter", "report", "report_csv"]

_CALL_SCOPE = """
c.started_at >= CAST(:since AS DOUBLE PRECISION) AND c.started_at < CAST(:until AS DOUBLE PRECISION)
AND (CAST(:dialplan AS TEXT) IS NULL OR c.dialplan = CAST(:dialplan AS TEXT))
AND (CAST(:lang AS TEXT) IS NULL OR c.lang = CAST(:lang AS TEXT)
     OR (c.lang = '' AND CAST(:lang AS TEXT) = CAST(:default_lang AS TEXT)))
"""
_DAY_SCOPE = """
r.day >= CAST(:first_day AS TEXT) AND r.day <= CAST(:last_day AS TEXT)
AND (CAST(:dialplan AS TEXT) IS NULL OR r.dialplan = CAST(:dialplan AS TEXT))
AND (CAST(:lang AS TEXT) IS NULL OR r.lang = CAST(:lang AS TEXT)
     OR (r.lang = '' AND CAST(:lang AS TEXT) = CAST(:default_lang AS TEXT)))
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
                "default_lang": self.default_lang, "first_day": day_of(max(self.since, 0.0)),
                "last_day": day_of(max(min(self.until, 253_402_300_799.0) - 0.001, 0.0))}


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
    connection (`dialect` says which). Call outcomes and languages come from the calls' summary columns (exact
    times); turn figures (hot spots, funnel, intents) from the daily roll-ups (whole UTC days)."""
    sql = _Sql(db, dialect)
    params = {**scope.params(), "top": top}
    classes: dict[str, int] = {}
    languages: dict[str, int] = {}
    for klass, lang, count in sql.all(  # one pass over the calls (a covering index): classes and languages
            "SELECT CASE WHEN c.ended_at IS NULL THEN 'in_progress_or_lost' ELSE COALESCE(c.class, 'other') END, "
            "CASE WHEN c.lang = '' THEN CAST(:default_lang AS TEXT) ELSE c.lang END, COUNT(*) FROM calls c "
            f"WHERE {_CALL_SCOPE} GROUP BY 1, 2", params):
        classes[klass] = classes.get(klass, 0) + int(count)
        languages[lang] = languages.get(lang, 0) + int(count)
    total = sum(classes.values())
    rates = {name: _rate(count, total) for name, count in classes.items()}
    counters: dict[str, dict[tuple[str, str], int]] = {}
    for metric, dialplan, key, count in sql.all(
            f"SELECT r.metric, r.dialplan, r.key, SUM(r.count) FROM rollups r WHERE {_DAY_SCOPE} "
            "GROUP BY r.metric, r.dialplan, r.key", params):
        counters.setdefault(metric, {})[(dialplan, key)] = int(count)
    spots: dict[tuple[str, str], list[int]] = {}
    for index, metric in enumerate(("nomatch", "noinput")):
        for place, count in counters.get(metric, {}).items():
            spots.setdefault(place, [0, 0])[index] += count
    hot_spots = [{"dialplan": dialplan, "node": node, "nomatch": counts[0], "noinput": counts[1]}
                 for (dialplan, node), counts in sorted(spots.items(), key=lambda item: (-sum(item[1]), item[0]))]
    entered, left = counters.get("node", {}), counters.get("left", {})
    funnel = [{"dialplan": dialplan, "node": node, "calls": count, "left_here": left.get((dialplan, node), 0)}
              for (dialplan, node), count in sorted(entered.items(), key=lambda item: (-item[1], item[0]))]
    intents: dict[str, int] = {}
    for (_, intent), count in counters.get("intent", {}).items():
        intents[intent] = intents.get(intent, 0) + count
    spoken = sum(intents.values())
    not_understood = intents.get("", 0) + intents.get("out_of_scope", 0)
    heard = sorted(((intent, count) for intent, count in intents.items() if intent), key=lambda x: (-x[1], x[0]))
    return {
        "scope": {k: v for k, v in scope.params().items() if k in ("since", "until", "dialplan", "lang")},
        "calls": total,
        "outcomes": classes,
        "rates": rates,
        "containment_rate": rates.get("contained", 0.0),
        "turns": {"spoken": spoken, "nomatch": sum(counters.get("nomatch", {}).values()),
                  "noinput": sum(counters.get("noinput", {}).values())},
        "hot_spots": hot_spots[:top],
        "funnel": funnel,
        "top_intents": [{"intent": intent, "count": count} for intent, count in heard][:top],
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
