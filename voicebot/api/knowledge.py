"""Knowledge search over the API, for agents' desktops (assist): GET /kb/search?q=&lang=&tags=&collection=&k=.

Every role may search (a token is required, as everywhere); each token may make `per_window` searches within
`window_s` (429 with Retry-After beyond that), so a stuck desktop cannot eat the CPU the calls need. The search
runs in a worker thread: an encoder pass costs milliseconds, too long for the event loop pacing the media.

    200 {"query": "...", "lang": "en", "hits": [{"id", "title", "tags", "lang", "version", "collection", "owner",
         "short_answer", "valid_from", "valid_until", "score"}]}
    400 {"error": "..."} for a missing q, an unknown lang, bad tags or k; 503 when no knowledge base is loaded.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from voicebot.api.app import CLOCK_KEY, _error, principal_of
from voicebot.api.security import LoginLimiter

__all__ = ["add_knowledge_routes"]

MAX_QUERY = 500
_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")
_LANGS = {"en": "en", "en-us": "en", "zh": "zh", "zh-cn": "zh"}
KnowledgeSource = Callable[[], Any]  # -> the current KnowledgeBase, or None


class _BadQuery(ValueError):
    pass


def _parse(query: Any) -> dict[str, Any]:
    text = (query.get("q") or "").strip()
    if not text:
        raise _BadQuery("q (the question) is required")
    if len(text) > MAX_QUERY:
        raise _BadQuery(f"q is longer than {MAX_QUERY} characters")
    lang = _LANGS.get((query.get("lang") or "en").lower())
    if lang is None:
        raise _BadQuery("lang must be en or zh (en-US, zh-CN)")
    tags = [tag.strip() for tag in (query.get("tags") or "").split(",") if tag.strip()]
    if len(tags) > 10 or not all(_TAG.match(tag) for tag in tags):
        raise _BadQuery("tags are up to 10 comma-separated lower-case words, e.g. refunds,fees")
    collection = query.get("collection") or None
    if collection is not None and not _TAG.match(collection):
        raise _BadQuery("collection must be a collection name, e.g. finance")
    try:
        k = int(query.get("k") or 3)
    except ValueError:
        raise _BadQuery("k must be a number from 1 to 10") from None
    if not 1 <= k <= 10:
        raise _BadQuery("k must be a number from 1 to 10")
    return {"query": text, "lang": lang, "tags": tags, "collection": collection, "k": k}


def add_knowledge_routes(app: web.Application, knowledge: KnowledgeSource, *, per_window: int = 30,
                         window_s: float = 10.0) -> None:
    """Add GET /kb/search; `knowledge()` gives the knowledge base in force (hot reloads swap it)."""
    limiter = LoginLimiter(per_window, window_s)

    async def kb_search(request: web.Request) -> web.Response:
        principal = principal_of(request)
        now = request.app[CLOCK_KEY]() if CLOCK_KEY in request.app else time.monotonic()
        key = f"kb:{principal.token_id}"
        retry = limiter.blocked(key, now)
        if retry is not None:
            return _error(429, "too many knowledge searches; slow down", **{"Retry-After": str(int(retry) + 1)})
        limiter.failed(key, now)  # counts the request
        try:
            params = _parse(request.query)
        except _BadQuery as exc:
            return _error(400, str(exc))
        kb = knowledge()
        if kb is None:
            return _error(503, "no knowledge base is loaded")
        from voicebot.knowledge.articles import describe

        hits = await asyncio.get_running_loop().run_in_executor(None, lambda: kb.search(
            params["query"], params["lang"], collection=params["collection"], tags=params["tags"], k=params["k"]))
        return web.json_response({"query": params["query"], "lang": params["lang"],
                                  "hits": [{**describe(hit.article), "score": hit.score} for hit in hits]})

    app.router.add_get("/kb/search", kb_search)
