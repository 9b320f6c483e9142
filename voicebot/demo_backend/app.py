"""The built-in demo backend: an aiohttp app serving `POST /hooks/{name}` (JSON in, JSON out).

Each industry module (`voicebot.demo_backend.<industry>`) exposes
`HANDLERS: dict[str, Callable[[dict], dict | Awaitable[dict]]]` keyed by webhook name (`finance.verify`); the
modules named in `INDUSTRY_MODULES` that exist are imported and merged. Dialplans reach the handlers through the
same webhook mechanism a real backend uses, so `endpoints()` is merged into the session's webhook map.

Errors: unknown hook → 404, body that is not a JSON object → 400, a handler's `BadRequest` → 400, a caller number
in `data.FAILING_CALLERS` → 500 (so dialplans' `on_error` paths can be exercised over real HTTP), any other
exception → 500. Every error body is `{"ok": false, "error": "..."}`.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from voicebot.demo_backend import data
from voicebot.demo_backend.data import BadRequest, DemoStore

__all__ = ["INDUSTRY_MODULES", "DemoBackend", "Handler", "build_app", "load_handlers", "start_demo_backend"]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], "dict[str, Any] | Awaitable[dict[str, Any]]"]

INDUSTRY_MODULES: tuple[str, ...] = ("demo", "finance", "ecommerce", "healthcare", "airline", "education")
"""Modules under voicebot.demo_backend that may define HANDLERS; missing ones are skipped."""

_STORE_KEY = web.AppKey("demo_store", DemoStore)
_HANDLERS_KEY = web.AppKey("demo_handlers", dict)


def load_handlers(modules: tuple[str, ...] = INDUSTRY_MODULES) -> dict[str, Handler]:
    """Import each existing industry module and merge its HANDLERS; names must start with `<module>.`."""
    handlers: dict[str, Handler] = {}
    for module_name in modules:
        qualified = f"{__package__}.{module_name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name == qualified:  # the module is not written (yet); a broken import inside it still raises
                continue
            raise
        table = getattr(module, "HANDLERS", None)
        if not isinstance(table, Mapping):
            raise TypeError(f"{qualified}.HANDLERS must be a dict of webhook name -> handler")
        for name, handler in table.items():
            if not name.startswith(f"{module_name}.") or not callable(handler):
                raise TypeError(f"{qualified}.HANDLERS[{name!r}]: names must start with '{module_name}.' "
                                "and map to a callable")
            handlers[name] = handler
    return handlers


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


async def _read_args(request: web.Request) -> dict[str, Any] | web.Response:
    """The request's arguments: the JSON object body (POST) or the query string (GET)."""
    if request.method == "GET":
        return dict(request.query)
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _error(400, f"request body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return _error(400, f"request body must be a JSON object, got {type(body).__name__}")
    return body


async def _hook(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    handler = request.app[_HANDLERS_KEY].get(name)
    if handler is None:
        return _error(404, f"unknown webhook {name!r}; known: {', '.join(sorted(request.app[_HANDLERS_KEY]))}")
    args = await _read_args(request)
    if isinstance(args, web.Response):
        return args
    if data.is_failing_caller(args):
        return _error(500, "forced failure: this caller number makes the demo backend fail (for tests)")
    token = data.use_store(request.app[_STORE_KEY])
    try:
        result = handler(args)
        if inspect.isawaitable(result):
            result = await result
    except BadRequest as exc:
        return _error(400, str(exc))
    except Exception:  # a demo handler bug must not take the server down
        log.exception("demo webhook %s failed", name)
        return _error(500, f"webhook {name!r} failed")
    finally:
        data.reset_store(token)
    if not isinstance(result, dict):
        log.error("demo webhook %s returned %s, not a dict", name, type(result).__name__)
        return _error(500, f"webhook {name!r} returned no JSON object")
    return web.json_response(result)


async def _index(request: web.Request) -> web.Response:
    return web.json_response({"hooks": sorted(request.app[_HANDLERS_KEY])})


def build_app(handlers: Mapping[str, Handler] | None = None, store: DemoStore | None = None) -> web.Application:
    """The aiohttp application; `store` holds this instance's (mutable) sample data."""
    app = web.Application(client_max_size=256 * 1024)
    app[_HANDLERS_KEY] = dict(load_handlers() if handlers is None else handlers)
    app[_STORE_KEY] = store if store is not None else data.new_store()
    app.router.add_get("/hooks", _index)
    app.router.add_route("POST", "/hooks/{name}", _hook)
    app.router.add_route("GET", "/hooks/{name}", _hook)
    return app


class DemoBackend:
    """A running demo backend; `endpoints()` is the webhook map to merge into the session's."""

    def __init__(self, runner: web.AppRunner, base_url: str, app: web.Application) -> None:
        self._runner = runner
        self.base_url = base_url
        self.app = app

    @property
    def store(self) -> DemoStore:
        return self.app[_STORE_KEY]

    def endpoints(self) -> dict[str, str]:
        """Webhook name -> URL, for every registered handler."""
        return {name: f"{self.base_url}/hooks/{name}" for name in sorted(self.app[_HANDLERS_KEY])}

    async def close(self) -> None:
        await self._runner.cleanup()


async def start_demo_backend(host: str = "127.0.0.1", port: int = 0, *, store: DemoStore | None = None,
                             handlers: Mapping[str, Handler] | None = None) -> DemoBackend:
    """Serve the demo backend on host:port (0 = a free port)."""
    app = build_app(handlers, store)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
    bound_port = sockets[0].getsockname()[1] if sockets else port
    shown_host = f"[{host}]" if ":" in host else host
    return DemoBackend(runner, f"http://{shown_host}:{bound_port}", app)
