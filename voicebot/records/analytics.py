"""Conversation analytics: SQL over the call records (voicebot/records/store.py). Pure queries, no I/O of their own
beyond the connection they are given.

The questions a contact-center manager asks every week:
- containment: calls the bot finished by itself (ended by the dialplan with `completed`, never queued/transferred);
- transfers to people, abandonment (the caller hung up: in the bot, or while waiting in a queue) and callbacks;
- where callers struggle: nomatch / noinput per node, the node funnel and where calls were left;
- what callers ask: top intents and the share nobody understood (no intent or `out_of_scope`);
- how well the bot hears and how fast it answers: ASR confidence and turn latency histograms per language;
- whether the announced waits were honest: per queue, the calls an agent answered within / before / after the
  range first announced to them (the wait counted from that announcement), and those who left after it;
- ASA (average speed of answer, from joining the queue) and service level (share of the calls offered to a queue
  answered within N s) per queue, per hour or day of joining;
- per language.
Filters: dialplan, a [since, until) time range (epoch seconds), language, queue (the first queue a call joined: the
turn figures then come from `queue_rollups`, the counters of the calls that joined it). The same queries run on the
embedded SQLite store and on the cluster's PostgreSQL (voicebot/records/postgres.py).
"""

from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import dataclass
from typing import Any

from voicebot.records.summary import CONFIDENCE_BUCKETS, LATENCY_KEYS, day_of

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
_IN_QUEUE = " AND c.queued_at IS NOT NULL AND c.queue = CAST(:queue AS TEXT)"  # only with a queue filter: an unused
# column in the scope would cost the covering index of the unfiltered queries
BUCKETS = {"hour": 3600, "day": 86400}
CLASSES = ("contained", "transferred", "abandoned_in_bot", "abandoned_in_queue", "callback", "queued_not_answered")
# One pass over the queued calls (the partial index calls_queued covers it): ASA, service level and EWT honesty.
_QUEUE_FIGURES = """
SELECT c.queue, {floor:queued_at}, COUNT(*),
  SUM(CASE WHEN c.answered_at IS NOT NULL THEN 1 ELSE 0 END),
  SUM(CASE WHEN c.answered_at IS NOT NULL THEN c.answered_at - c.queued_at ELSE 0 END),
  SUM(CASE WHEN c.answered_at - c.queued_at <= CAST(:service_level_s AS DOUBLE PRECISION) THEN 1 ELSE 0 END),
  SUM(CASE WHEN c.answered_at IS NULL AND c.class = 'abandoned_in_queue' THEN 1 ELSE 0 END),
  SUM(CASE WHEN c.answered_at - c.ewt_at < c.ewt_low THEN 1 ELSE 0 END),
  SUM(CASE WHEN c.answered_at - c.ewt_at BETWEEN c.ewt_low AND c.ewt_high THEN 1 ELSE 0 END),
  SUM(CASE WHEN c.answered_at - c.ewt_at > c.ewt_high THEN 1 ELSE 0 END),
  SUM(CASE WHEN c.ewt_at IS NOT NULL AND c.answered_at IS NULL THEN 1 ELSE 0 END)
FROM calls c
WHERE c.queued_at IS NOT NULL AND (c.answered_at IS NOT NULL OR c.ended_at IS NOT NULL) AND {scope}
GROUP BY 1, 2
"""


@dataclass(frozen=True)
class AnalyticsFilter:
    since: float = 0.0
    until: float = 1e12
    dialplan: str | None = None
    lang: str | None = None  # "en-US" / "zh-CN": the call's language after any switch
    default_lang: str = "en-US"  # calls that never switched language are in the dialplan's first language
    queue: str | None = None  # calls that joined this queue (first)

    def params(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "dialplan": self.dialplan, "lang": self.lang,
                "queue": self.queue,
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
            sql = re.sub(r"\{q:(\w+)\}", r"json_extract(q.data, '$.\1')", sql)
            sql = re.sub(r"\{floor:(\w+)\}", r"CAST(c.\1 / :bucket_s AS INTEGER)", sql)  # times are positive
            return sql.replace("{jc:node}", "json_extract(e.data, '$.node')")
        sql = re.sub(r"\{floor:(\w+)\}", r"FLOOR(c.\1 / CAST(:bucket_s AS DOUBLE PRECISION))", sql)
        sql = re.sub(r"\{j:(\w+)\}", r"(e.data->>'\1')", sql)
        sql = re.sub(r"\{n:(\w+)\}", r"(n.data->>'\1')", sql)
        sql = re.sub(r"\{q:(\w+)\}", r"(q.data->>'\1')", sql)
        sql = sql.replace("{jc:node}", "(e.data->>'node')")
        return re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql)

    def all(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        cursor = self.db.execute(self.text(sql), params or {})
        return [tuple(row) for row in cursor.fetchall()]

    def run(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self.db.execute(self.text(sql), params or {})


def report(db: Any, scope: AnalyticsFilter = AnalyticsFilter(), *, top: int = 10, dialect: str = "sqlite",
           bucket: str = "day", service_level_s: float = 20.0) -> dict[str, Any]:
    """Every figure of the analytics page for `scope`, as plain JSON-able data. `db`: a sqlite3 or psycopg
    connection (`dialect` says which). Call outcomes, languages and the queue figures come from the calls' summary
    columns (exact times); turn figures (hot spots, funnel, intents, confidence, latency) from the daily roll-ups
    (whole UTC days). `bucket` (hour or day) slices ASA and service level; `service_level_s` is its N."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, got {bucket!r}")
    if not 0 < service_level_s <= 86400:
        raise ValueError(f"service_level_s must be within (0, 86400] seconds, got {service_level_s}")
    sql = _Sql(db, dialect)
    params = {**scope.params(), "top": top, "bucket_s": BUCKETS[bucket], "service_level_s": float(service_level_s)}
    call_scope = _CALL_SCOPE + (_IN_QUEUE if scope.queue is not None else "")
    rollups = "rollups r" if scope.queue is None else "queue_rollups r"
    day_scope = _DAY_SCOPE + ("" if scope.queue is None else " AND r.queue = CAST(:queue AS TEXT)")
    classes, languages = _classes_and_languages(sql, call_scope, params, scope.default_lang)
    total = sum(classes.values())
    rates = {name: _rate(count, total) for name, count in classes.items()}
    counters: dict[str, dict[tuple[str, str], int]] = {}
    histograms: dict[str, dict[str, dict[str, int]]] = {"asr_conf": {}, "turn_ms": {}}
    for metric, dialplan, lang, key, count in sql.all(
            f"SELECT r.metric, r.dialplan, r.lang, r.key, SUM(r.count) FROM {rollups} WHERE {day_scope} "
            "GROUP BY r.metric, r.dialplan, r.lang, r.key", params):
        if metric in histograms:
            per_lang = histograms[metric].setdefault(lang or scope.default_lang, {})
            per_lang[key] = per_lang.get(key, 0) + int(count)
            continue
        counted = counters.setdefault(metric, {})
        counted[(dialplan, key)] = counted.get((dialplan, key), 0) + int(count)
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
    queue_rows = sql.all(_QUEUE_FIGURES.replace("{scope}", call_scope), params)
    return {
        "scope": {k: v for k, v in scope.params().items() if k in ("since", "until", "dialplan", "lang", "queue")},
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
        "asr_confidence": _histogram(CONFIDENCE_BUCKETS, histograms["asr_conf"]),
        "turn_latency_ms": _histogram(LATENCY_KEYS, histograms["turn_ms"]),
        "ewt_honesty": _ewt_honesty(queue_rows),
        "service": _service(queue_rows, bucket, service_level_s),
    }


def _classes_and_languages(sql: _Sql, call_scope: str, params: dict[str, Any],
                           default_lang: str) -> tuple[dict[str, int], dict[str, int]]:
    """Calls per class and per language in one pass over the calls' covering index, counted into fixed columns: a
    GROUP BY would sort every call first (twice the time at a million calls). Languages are those the roll-ups
    know; should a call hold another, the languages are counted again with a GROUP BY."""
    known = sorted({str(row[0]) for row in sql.all("SELECT DISTINCT r.lang FROM rollups r")} | {"", default_lang})
    names = {f"lang_{index}": lang for index, lang in enumerate(known)}
    columns = ["COUNT(*)", "COUNT(CASE WHEN c.ended_at IS NULL THEN 1 END)"]
    columns += [f"COUNT(CASE WHEN c.ended_at IS NOT NULL AND c.class = '{name}' THEN 1 END)" for name in CLASSES]
    columns += [f"COUNT(CASE WHEN c.lang = CAST(:{name} AS TEXT) THEN 1 END)" for name in names]
    total, lost, *counts = (int(value or 0) for value in
                            sql.all(f"SELECT {', '.join(columns)} FROM calls c WHERE {call_scope}",
                                    {**params, **names})[0])
    named, per_lang = counts[:len(CLASSES)], counts[len(CLASSES):]
    classes = {name: count for name, count in zip(CLASSES, named) if count}
    if lost:
        classes["in_progress_or_lost"] = lost
    if total - lost - sum(named):
        classes["other"] = total - lost - sum(named)
    pairs = list(zip(known, per_lang))
    if sum(per_lang) < total:
        pairs = [(str(lang), int(count)) for lang, count in sql.all(
            f"SELECT c.lang, COUNT(*) FROM calls c WHERE {call_scope} GROUP BY c.lang", params)]
    languages: dict[str, int] = {}
    for lang, count in pairs:
        if count:
            languages[lang or default_lang] = languages.get(lang or default_lang, 0) + count
    return classes, languages


def _histogram(keys: tuple[str, ...], per_lang: dict[str, dict[str, int]]) -> dict[str, Any]:
    """{"buckets": keys, "by_lang": {lang: [count per bucket]}} (a key the store never writes is not counted)."""
    return {"buckets": list(keys),
            "by_lang": {lang: [counts.get(key, 0) for key in keys] for lang, counts in sorted(per_lang.items())}}


def _ewt_honesty(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Per queue: of the calls answered after a wait was announced, within / before / after the announced range;
    `left`: callers who hung up (or were not answered) after hearing it."""
    per_queue: dict[str, list[int]] = {}
    for row in rows:
        sums = per_queue.setdefault(row[0], [0, 0, 0, 0])
        for index, value in enumerate(row[7:11]):
            sums[index] += int(value or 0)
    out = []
    for queue, (early, within, late, left) in sorted(per_queue.items()):
        answered = early + within + late
        if answered + left == 0:
            continue
        out.append({"queue": queue, "answered": answered, "within": within, "early": early, "late": late,
                    "left": left, "within_share": _rate(within, answered), "early_share": _rate(early, answered),
                    "late_share": _rate(late, answered)})
    return out


def _figures(offered: int, answered: int, wait_sum: float, in_time: int) -> dict[str, Any]:
    return {"offered": offered, "answered": answered, "asa_s": round(wait_sum / answered, 2) if answered else None,
            "service_level": _rate(in_time, offered)}


def _service(rows: list[tuple[Any, ...]], bucket: str, service_level_s: float) -> dict[str, Any]:
    """ASA and service level per queue, and per queue and time bucket (oldest first)."""
    size = BUCKETS[bucket]
    totals: dict[str, list[float]] = {}
    series = []
    for queue, slot, offered, answered, wait_sum, in_time, abandoned, *_ in sorted(rows, key=lambda r: (r[0], r[1])):
        start = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(int(slot) * size))
        series.append({"queue": queue, "start": start, "abandoned": int(abandoned or 0),
                       **_figures(int(offered), int(answered or 0), float(wait_sum or 0), int(in_time or 0))})
        sums = totals.setdefault(queue, [0, 0, 0.0, 0, 0])
        for index, value in enumerate((offered, answered, wait_sum, in_time, abandoned)):
            sums[index] += float(value or 0)
    queues = [{"queue": queue, "abandoned": int(sums[4]),
               **_figures(int(sums[0]), int(sums[1]), sums[2], int(sums[3]))} for queue, sums in sorted(totals.items())]
    return {"bucket": bucket, "threshold_s": service_level_s, "queues": queues, "series": series}


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
    for section in ("asr_confidence", "turn_latency_ms"):
        histogram = data[section]
        for lang, counts in histogram["by_lang"].items():
            for key, count in zip(histogram["buckets"], counts):
                writer.writerow([section, f"{lang}/{key}", count])
    for item in data["ewt_honesty"]:
        for name in ("answered", "within", "early", "late", "left", "within_share", "early_share", "late_share"):
            writer.writerow(["ewt_honesty", f"{item['queue']}/{name}", item[name]])
    service = data["service"]
    writer.writerow(["service", "threshold_s", service["threshold_s"]])
    for item in service["queues"]:
        for name in ("offered", "answered", "abandoned", "asa_s", "service_level"):
            writer.writerow(["service", f"{item['queue']}/{name}", "" if item[name] is None else item[name]])
    for item in service["series"]:
        for name in ("offered", "answered", "abandoned", "asa_s", "service_level"):
            writer.writerow([f"service_{service['bucket']}", f"{item['queue']}/{item['start']}/{name}",
                             "" if item[name] is None else item[name]])
    return out.getvalue()
