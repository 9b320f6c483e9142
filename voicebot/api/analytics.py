"""Conversation analytics over the API (admins and supervisors): GET /analytics and /analytics.csv.

Query parameters: `dialplan`, `lang` (en-US, zh-CN), `from` and `to` (ISO dates or date-times, UTC; `to` is
exclusive). The figures are computed by voicebot/records/analytics.py on a read-only connection to the call record
store, in a worker thread (the event loop keeps the media pacing).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

from aiohttp import web

from voicebot.api.app import STATIC_DIR, _error, public, roles
from voicebot.records.analytics import AnalyticsFilter, report, report_csv
from voicebot.records.store import SCHEMA

__all__ = ["add_analytics_routes"]

RECORDS_PATH_KEY = web.AppKey("records_path", Path)


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
    dialplan = query.get("dialplan") or None
    if dialplan is not None and (len(dialplan) > 64 or not dialplan.replace("-", "").replace("_", "").isalnum()):
        raise _BadQuery("dialplan must be a dialplan name")
    return AnalyticsFilter(since=since, until=until, dialplan=dialplan, lang=lang)


def _compute(path: Path, scope: AnalyticsFilter) -> dict[str, Any]:
    if path.exists():
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    else:  # no call yet: the same report, all zeros
        db = sqlite3.connect(":memory:")
        db.executescript(SCHEMA)
    try:
        return report(db, scope)
    finally:
        db.close()


async def _report(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        scope = _scope(request.query)
    except _BadQuery as exc:
        return _error(400, str(exc))
    return await asyncio.get_running_loop().run_in_executor(None, _compute, request.app[RECORDS_PATH_KEY], scope)


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
    return web.FileResponse(STATIC_DIR / "analytics.html")


def add_analytics_routes(app: web.Application, records_path: Path) -> None:
    app[RECORDS_PATH_KEY] = records_path
    app.router.add_get("/analytics", analytics_json)
    app.router.add_get("/analytics.csv", analytics_csv)
    app.router.add_get("/analytics/view", analytics_page)
