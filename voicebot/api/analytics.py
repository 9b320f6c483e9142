"""Conversation analytics over the API (admins and supervisors): GET /analytics and /analytics.csv; the improvement
loop: GET /review (what callers said that nothing understood, grouped) and POST /review/export (the domain's nlu.yml
with labelled examples added, as a download: `voicebot nlu eval` then shows the effect).

Query parameters: `dialplan`, `lang` (en-US, zh-CN), `queue`, `from` and `to` (ISO dates or date-times, UTC; `to`
is exclusive); `bucket` (hour or day: the slices of ASA and service level) and `sl` (the service level's N seconds,
default 20). The figures are computed by voicebot/records/analytics.py on a read-only connection to the call record
store, in a worker thread (the event loop keeps the media pacing).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

from aiohttp import web

from voicebot.api.app import BOT_METRICS_KEY, STATIC_DIR, _error, public, roles
from voicebot.api.headers import page_headers
from voicebot.nlu.edit import add_examples
from voicebot.records.analytics import AnalyticsFilter, report, report_csv
from voicebot.records.metrics import BotMetrics
from voicebot.records.review import group_similar, knowledge_misses, not_understood
from voicebot.yamlsrc import YamlSourceError
from voicebot.records.store import SCHEMA

__all__ = ["add_analytics_routes"]

RECORDS_PATH_KEY = web.AppKey("records_path", Path)
NLU_DIR_KEY = web.AppKey("nlu_dir", Path)


class _BadQuery(ValueError):
    pass


def _epoch(value: str | None, name: str, default: float) -> float:
    if not value:
        return default
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _BadQuery(f"{name} must be an ISO date or date-time, e.g. 2026-12-01 or 2026-12-01T08:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def _scope(query: Any) -> AnalyticsFilter:
    since = _epoch(query.get("from"), "from", 0.0)
    until = _epoch(query.get("to"), "to", 1e12)
    if until <= since:
        raise _BadQuery("'to' must be after 'from'")
    lang = query.get("lang") or None
    if lang is not None and lang not in ("en-US", "zh-CN"):
        raise _BadQuery("lang must be en-US or zh-CN")
    dialplan = _name(query, "dialplan")
    return AnalyticsFilter(since=since, until=until, dialplan=dialplan, lang=lang, queue=_name(query, "queue"))


def _name(query: Any, field: str) -> str | None:
    value = query.get(field) or None
    if value is not None and (len(value) > 64 or not value.replace("-", "").replace("_", "").isalnum()):
        raise _BadQuery(f"{field} must be a {field} name (letters, digits, - and _)")
    return value if isinstance(value, str) else None


def _slicing(query: Any) -> tuple[str, float]:
    """(bucket, service level seconds) of the ASA / service level section."""
    bucket = query.get("bucket") or "day"
    if bucket not in ("hour", "day"):
        raise _BadQuery("bucket must be hour or day")
    try:
        seconds = float(query.get("sl") or 20)
    except ValueError:
        raise _BadQuery("sl must be a number of seconds, e.g. 20") from None
    if not 1 <= seconds <= 3600:
        raise _BadQuery("sl must be between 1 and 3600 seconds")
    return bucket, seconds


def _connect(path: Path) -> sqlite3.Connection:
    if path.exists():
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db = sqlite3.connect(":memory:")  # no call yet: the same answers, empty
    db.executescript(SCHEMA)
    return db


def _groups(path: Path, scope: AnalyticsFilter, shown: int) -> dict[str, Any]:
    db = _connect(path)
    try:
        utterances = not_understood(db, scope)
        misses = knowledge_misses(db, scope)
    finally:
        db.close()
    groups = group_similar(utterances)
    return {"utterances": len(utterances), "groups": [group.summary() for group in groups[:shown]],
            "knowledge_misses": len(misses),
            "knowledge_miss_groups": [group.summary() for group in group_similar(misses)[:shown]]}


def _compute(path: Path, scope: AnalyticsFilter, bucket: str, service_level_s: float) -> dict[str, Any]:
    db = _connect(path)
    try:
        return report(db, scope, bucket=bucket, service_level_s=service_level_s)
    finally:
        db.close()


async def _report(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        scope = _scope(request.query)
        bucket, service_level_s = _slicing(request.query)
    except _BadQuery as exc:
        return _error(400, str(exc))
    return await asyncio.get_running_loop().run_in_executor(None, _compute, request.app[RECORDS_PATH_KEY], scope,
                                                            bucket, service_level_s)


@roles("admin", "supervisor")
async def analytics_json(request: web.Request) -> web.StreamResponse:
    data = await _report(request)
    return data if isinstance(data, web.Response) else web.json_response(data)


@roles("admin", "supervisor")
async def analytics_csv(request: web.Request) -> web.StreamResponse:
    data = await _report(request)
    if isinstance(data, web.Response):
        return data
    return web.Response(text=report_csv(data), content_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="voicebot-analytics.csv"'})


@public
async def analytics_page(request: web.Request) -> web.FileResponse:
    """The analytics page: static HTML; the figures it fetches need a supervisor or admin token."""
    return web.FileResponse(STATIC_DIR / "analytics.html", headers=page_headers(STATIC_DIR / "analytics.html"))


@roles("admin", "supervisor")
async def review_groups(request: web.Request) -> web.StreamResponse:
    try:
        scope = _scope(request.query)
        shown = int(request.query.get("groups", "50"))
    except (_BadQuery, ValueError) as exc:
        return _error(400, str(exc))
    data = await asyncio.get_running_loop().run_in_executor(
        None, _groups, request.app[RECORDS_PATH_KEY], scope, max(1, min(shown, 500)))
    return web.json_response(data)


@roles("admin", "supervisor")
async def review_export(request: web.Request) -> web.StreamResponse:
    """Body: {"domain": "finance", "lang": "en", "labels": [{"intent": "card_fees", "examples": ["..."]}]}."""
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "the body must be JSON")
    if not isinstance(body, dict) or not isinstance(body.get("labels"), list):
        return _error(400, 'send {"domain": ..., "lang": ..., "labels": [{"intent": ..., "examples": [...]}]}')
    domain, lang = str(body.get("domain", "")), str(body.get("lang", ""))
    if not domain.replace("_", "").replace("-", "").isalnum() or lang not in ("en", "zh"):
        return _error(400, "domain must be an NLU domain name (nlu_models/<domain>) and lang en or zh")
    path = request.app[NLU_DIR_KEY] / domain / lang / "nlu.yml"
    if not path.is_file():
        return _error(404, f"no NLU data for {domain}/{lang}")
    text = path.read_text(encoding="utf-8")
    added = 0
    try:
        for label in body["labels"][:200]:
            if not isinstance(label, dict) or not isinstance(label.get("examples"), list):
                return _error(400, "each label needs an intent and a list of examples")
            result = add_examples(text, str(label.get("intent", "")), [str(e) for e in label["examples"][:200]],
                                  label=f"{domain}/{lang}/nlu.yml")
            text, added = result.text, added + len(result.added)
    except (ValueError, YamlSourceError) as exc:
        return _error(400, str(exc))
    return web.Response(text=text, content_type="application/x-yaml", headers={
        "Content-Disposition": f'attachment; filename="{domain}-{lang}-nlu.yml"', "X-Examples-Added": str(added)})


@public
async def review_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "review.html", headers=page_headers(STATIC_DIR / "review.html"))


def add_analytics_routes(app: web.Application, records_path: Path, nlu_dir: Path | None = None,
                         metrics: BotMetrics | None = None) -> None:
    """Analytics and review routes; `metrics` (the call journal's) are added to the API's /metrics."""
    app[RECORDS_PATH_KEY] = records_path
    if metrics is not None:
        app[BOT_METRICS_KEY] = metrics
    app[NLU_DIR_KEY] = nlu_dir or Path("nlu_models")
    app.router.add_get("/review", review_groups)
    app.router.add_post("/review/export", review_export)
    app.router.add_get("/review/view", review_page)
    app.router.add_get("/analytics", analytics_json)
    app.router.add_get("/analytics.csv", analytics_csv)
    app.router.add_get("/analytics/view", analytics_page)
