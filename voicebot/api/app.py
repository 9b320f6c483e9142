"""The HTTP API (aiohttp): queues, agents, call context, metrics, the agent WebSocket and two pages.

    app = create_app(acd_service, tokens, allowed_origins=["https://desk.example.com"])
    runner = web.AppRunner(app); await runner.setup(); await web.TCPSite(runner, "127.0.0.1", 8080).start()

Every data endpoint needs `Authorization: Bearer <token>` (401 without or with a bad one, 403 for a wrong
role, 429 after too many failed guesses at one token id; a valid token is never refused). Agents see only their own state and calls. Open
without a token: /healthz and /readyz (no data), and the two pages /agent and /dashboard (static HTML that
asks for a token and then calls the API with it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from voicebot.api.agent_ws import AgentHub
from voicebot.api.audit_throttle import AuditThrottle
from voicebot.api.headers import page_headers, secure_responses
from voicebot.api.jsonbody import JsonBodyError, read_json
from voicebot.api.metrics import prometheus_text, queue_summaries
from voicebot.api.security import CorsPolicy, LoginLimiter
from voicebot.api.tokens import Principal, TokenFileError, TokenStore
from voicebot.web.admission import source_key
from voicebot.queues.acd import InvalidTransition, UnknownAgent, UnknownQueue
from voicebot.queues.service import AcdService
from voicebot.records.metrics import BotMetrics
from voicebot.rtp.srtp import SRTP_TOTALS

__all__ = ["create_app", "principal_of"]

STATIC_DIR = Path(__file__).parent / "static"
audit_log = logging.getLogger("voicebot.audit")

ACD_KEY = web.AppKey("acd", AcdService)
TOKENS_KEY = web.AppKey("tokens", TokenStore)
LIMITER_KEY = web.AppKey("limiter", LoginLimiter)
AUDIT_THROTTLE_KEY = web.AppKey("audit_throttle", AuditThrottle)
CLOCK_KEY = web.AppKey("clock", Callable[[], float])
HUB_KEY = web.AppKey("hub", AgentHub)
BOT_METRICS_KEY = web.AppKey("bot_metrics", BotMetrics)  # set by voicebot.api.analytics.add_analytics_routes
EXTRA_METRICS_KEY = web.AppKey("extra_metrics", list)  # () -> Prometheus text, e.g. voicebot.api.trunks
PRINCIPAL_KEY = web.RequestKey("principal", Principal)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PUBLIC = "voicebot_public"
_ROLES = "voicebot_roles"


def public(handler: Handler) -> Handler:
    setattr(handler, _PUBLIC, True)
    return handler


def roles(*allowed: str) -> Callable[[Handler], Handler]:
    def mark(handler: Handler) -> Handler:
        setattr(handler, _ROLES, frozenset(allowed))
        return handler

    return mark


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL_KEY]


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def audit(event: str, principal: Principal | None, **fields: Any) -> None:
    """One JSON line per access to sensitive data or change of state."""
    audit_log.info(json.dumps({"event": event, "token": principal.token_id if principal else None,
                               "role": principal.role if principal else None, **fields}, sort_keys=True))


def _token_identity(token: str) -> str:
    """What failed attempts are counted against: the token id a guess names (vbt_<id>_...), else the guess's
    shape only, so one noisy client cannot lock anybody else out."""
    token_id = token[len("vbt_"):].partition("_")[0] if token.startswith("vbt_") else ""
    return f"id:{token_id[:32]}" if token_id else "malformed"


def authenticate(request: web.Request, token: str | None) -> Principal | web.Response:
    """The principal for `token`, or the error response: 401, or 429 once guesses at this token id (or malformed
    tokens from this address) failed too often. A valid token is never refused."""
    principal = request.app[TOKENS_KEY].verify(token)
    if principal is not None:
        return principal
    limiter = request.app[LIMITER_KEY]
    now = request.app[CLOCK_KEY]()
    address = request.remote or "?"
    if request.app[AUDIT_THROTTLE_KEY].allow(source_key(address), now):
        audit("auth_failed", None, address=address, path=request.path)
    if not token:  # no token at all is just a request to log in, not a guess
        return _error(401, "missing or invalid token", **{"WWW-Authenticate": "Bearer"})
    identity = _token_identity(token)
    key = identity if identity != "malformed" else f"malformed:{source_key(address)}"
    retry = limiter.blocked(key, now)
    if retry is not None:
        return _error(429, "too many failed attempts with this token; try again later",
                      **{"Retry-After": str(int(retry) + 1)})
    limiter.failed(key, now)
    return _error(401, "missing or invalid token", **{"WWW-Authenticate": "Bearer"})


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _auth_middleware(cors: CorsPolicy) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        cors_headers = cors.headers(request.headers.get("Origin"))
        if request.method == "OPTIONS":
            return web.Response(status=204 if cors_headers else 403, headers=cors_headers)
        route_handler = getattr(request.match_info, "handler", None)
        if route_handler is not None and not getattr(route_handler, _PUBLIC, False):
            outcome = authenticate(request, _bearer(request))
            if isinstance(outcome, web.Response):
                outcome.headers.update(cors_headers)
                return outcome
            allowed = getattr(route_handler, _ROLES, None)
            if allowed is not None and outcome.role not in allowed:
                return _error(403, f"role {outcome.role!r} may not use this endpoint", **cors_headers)
            request[PRINCIPAL_KEY] = outcome
        response = await handler(request)
        response.headers.update(cors_headers)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return middleware


# ------------------------------------------------------------------------------------------- handlers


@public
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@dataclass
class NodeStatus:
    """Mutable node state shared with the SIP server: draining nodes report not-ready to load balancers."""

    draining: bool = False
    active_calls: Callable[[], int] = lambda: 0


NODE_KEY = web.AppKey("node_status", NodeStatus)


@public
async def readyz(request: web.Request) -> web.Response:
    node = request.app.get(NODE_KEY)
    if node is not None and node.draining:
        return web.json_response({"status": "draining", "active_calls": node.active_calls()}, status=503)
    store = request.app[ACD_KEY].store
    try:
        await store.load()
    except Exception:  # store unreachable: not ready, and say nothing more to an anonymous caller
        return web.json_response({"status": "store unavailable"}, status=503)
    mode = getattr(store, "mode", None)  # ResilientStore: "degraded" while Redis is down (calls still served)
    return web.json_response({"status": "ready", **({"store": mode} if mode else {})})


@public
async def login(request: web.Request) -> web.Response:
    """Check a token (the pages' login form): who it belongs to. Failures count towards the rate limit."""
    try:
        body = await read_json(request)
        token = body.get("token") if isinstance(body, dict) else None
    except JsonBodyError as exc:
        return _error(400, f"send JSON: {{\"token\": \"vbt_...\"}} ({exc})")
    outcome = authenticate(request, token if isinstance(token, str) else None)
    if isinstance(outcome, web.Response):
        return outcome
    audit("login", outcome, address=request.remote)
    return web.json_response({"role": outcome.role, "agent": outcome.agent})


async def _summaries(request: web.Request) -> list[dict[str, Any]]:
    service = request.app[ACD_KEY]
    state = await service.snapshot()
    ewts = {q.name: await service.ewt(q.name, state=state) for q in service.queues_config.queues}
    return queue_summaries(state, service.agents_config, service.queues_config, service.clock(), ewts)


@roles("admin", "supervisor")
async def metrics(request: web.Request) -> web.Response:
    service = request.app[ACD_KEY]
    state = await service.snapshot()
    ewts = {q.name: await service.ewt(q.name, state=state) for q in service.queues_config.queues}
    summaries = queue_summaries(state, service.agents_config, service.queues_config, service.clock(), ewts)
    text = prometheus_text(summaries, state)
    mode = getattr(service.store, "mode", None)
    if mode is not None:
        text += ("# HELP voicebot_queue_store_degraded 1 while the shared queue store (Redis) is unreachable\n"
                 f"# TYPE voicebot_queue_store_degraded gauge\nvoicebot_queue_store_degraded {int(mode == 'degraded')}\n")
    bot = request.app.get(BOT_METRICS_KEY)
    if bot is not None:  # the dialplan sessions' own figures (voicebot/records/metrics.py)
        text += bot.prometheus()
    text += SRTP_TOTALS.prometheus()  # this process's SRTP packets: protected, unprotected, dropped by kind
    for extra in request.app.get(EXTRA_METRICS_KEY, []):
        text += extra()
    return web.Response(text=text, content_type="text/plain", charset="utf-8",
                        headers={"X-Prometheus-Format": "0.0.4"})


async def list_queues(request: web.Request) -> web.Response:
    return web.json_response({"queues": await _summaries(request)})


async def queue_ewt(request: web.Request) -> web.Response:
    service = request.app[ACD_KEY]
    name = request.match_info["queue"]
    position_text = request.query.get("position")
    try:
        position = int(position_text) if position_text is not None else None
        if position is not None and position < 1:
            raise ValueError
    except ValueError:
        return _error(400, "position must be a whole number of 1 or more")
    try:
        ewt = await service.ewt(name, position)
    except UnknownQueue as exc:
        return _error(404, str(exc))
    from voicebot.queues.ewt import announce

    lang = request.query.get("lang", "en-US")
    return web.json_response({
        "queue": name,
        "ewt": None if ewt is None else {"low_s": round(ewt.low_s, 1), "high_s": round(ewt.high_s, 1)},
        "announcement": announce(ewt, lang),
    })


@roles("admin", "supervisor")
async def list_agents(request: web.Request) -> web.Response:
    state = await request.app[ACD_KEY].snapshot()
    agents = request.app[ACD_KEY].agents
    return web.json_response({"agents": [
        {"id": agent_id, "name": config.name, "state": state.agents[agent_id].state if agent_id in state.agents else "offline",
         "since": state.agents[agent_id].since if agent_id in state.agents else None,
         "handled": state.agents[agent_id].handled if agent_id in state.agents else 0,
         "not_ready_reason": state.agents[agent_id].not_ready_reason if agent_id in state.agents else None,
         "consecutive_no_answers": state.agents[agent_id].consecutive_no_answers if agent_id in state.agents else 0}
        for agent_id, config in agents.items()
    ]})


def _own_agent(request: web.Request) -> str | web.Response:
    agent_id = request.match_info["agent"]
    principal = principal_of(request)
    if principal.role == "agent" and principal.agent != agent_id:
        return _error(403, "agents may only see and change their own state")
    if agent_id not in request.app[ACD_KEY].agents:
        return _error(404, f"no agent {agent_id!r}")
    return agent_id


async def get_agent_state(request: web.Request) -> web.Response:
    agent_id = _own_agent(request)
    if isinstance(agent_id, web.Response):
        return agent_id
    state = await request.app[ACD_KEY].snapshot()
    status = state.agents.get(agent_id)
    return web.json_response({
        "agent": agent_id,
        "state": status.state if status else "offline",
        "since": status.since if status else None,
        "assignment": status.assignment_id if status else None,
        "call_id": status.call_id if status else None,
    })


async def set_agent_state(request: web.Request) -> web.Response:
    agent_id = _own_agent(request)
    if isinstance(agent_id, web.Response):
        return agent_id
    try:
        body = await read_json(request)
        wanted = body["state"]
    except JsonBodyError as exc:
        return _error(400, f'send JSON: {{"state": "available" | "offline" | "wrap_up"}} ({exc})')
    except (KeyError, TypeError):
        return _error(400, 'send JSON: {"state": "available" | "offline" | "wrap_up"}')
    if wanted not in ("available", "offline", "wrap_up"):
        return _error(400, f"state {wanted!r} cannot be requested; use available, offline or wrap_up")
    try:
        status = await request.app[ACD_KEY].set_agent_state(agent_id, wanted)
    except InvalidTransition as exc:
        return _error(409, str(exc))
    except UnknownAgent as exc:
        return _error(404, str(exc))
    audit("agent_state", principal_of(request), agent=agent_id, state=status.state)
    return web.json_response({"agent": agent_id, "state": status.state})


async def call_context(request: web.Request) -> web.Response:
    call_id = request.match_info["call"]
    principal = principal_of(request)
    service = request.app[ACD_KEY]
    if principal.role == "agent":
        state = await service.snapshot()
        status = state.agents.get(principal.agent or "")
        if status is None or status.call_id != call_id:
            audit("context_denied", principal, call_id=call_id)
            return _error(403, "this call is not assigned to you")
    context = await service.call_context(call_id)
    if context is None:
        return _error(404, f"no context for call {call_id!r}")
    audit("context_read", principal, call_id=call_id)
    return web.json_response(context)


@public
async def agent_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "agent.html", headers=page_headers(STATIC_DIR / "agent.html"))


@public
async def dashboard_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "dashboard.html", headers=page_headers(STATIC_DIR / "dashboard.html"))


async def enforce_tokens(tokens: TokenStore, hub: AgentHub) -> None:
    """Pick up token file changes and close the agent WebSockets of revoked tokens."""
    try:
        tokens.refresh()
    except TokenFileError as exc:
        logging.getLogger(__name__).error("token file not reloaded; the tokens read before stay in force: %s", exc)
    for principal in await hub.close_revoked(tokens.has):
        audit("token_revoked_disconnect", principal, agent=principal.agent)


# ------------------------------------------------------------------------------------------- factory


def create_app(
    acd_service: AcdService,
    tokens: TokenStore,
    *,
    allowed_origins: Iterable[str] = (),
    clock: Callable[[], float] = time.monotonic,
    login_failures: int = 5,
    login_window_s: float = 60.0,
    ws_auth_timeout_s: float = 10.0,
    node_status: NodeStatus | None = None,
    token_poll_s: float = 1.0,
) -> web.Application:
    """The API application. Start `acd_service.run()` yourself (the server owns the loop task).

    Token changes on disk apply to the next request at once; open agent WebSockets of a revoked token are
    closed within ``token_poll_s``.
    """
    app = web.Application(middlewares=[_auth_middleware(CorsPolicy(allowed_origins))], client_max_size=64 * 1024)
    secure_responses(app)
    app[ACD_KEY] = acd_service
    app[NODE_KEY] = node_status or NodeStatus()
    app[EXTRA_METRICS_KEY] = []
    app[TOKENS_KEY] = tokens
    app[LIMITER_KEY] = LoginLimiter(login_failures, login_window_s)
    throttle = app[AUDIT_THROTTLE_KEY] = AuditThrottle(window_s=login_window_s)
    app[CLOCK_KEY] = clock
    hub = AgentHub(acd_service, ws_auth_timeout_s)
    app[HUB_KEY] = hub

    async def ws_agent(request: web.Request) -> web.StreamResponse:
        return await hub.handle(request, lambda token: authenticate(request, token), audit)

    setattr(ws_agent, _PUBLIC, True)  # authenticates inside, with the first message (browsers cannot set headers)

    async def ws_supervisor(request: web.Request) -> web.StreamResponse:
        """Supervisors' live alerts (an agent set not-ready after unanswered offers, ...)."""
        return await hub.handle(request, lambda token: authenticate(request, token), audit, supervisor=True)

    setattr(ws_supervisor, _PUBLIC, True)

    def report_suppressed(force: bool = False) -> None:
        for address, count in throttle.drain(clock(), force):
            audit("auth_failed_suppressed", None, address=address, count=count, window_s=login_window_s)

    async def watch_tokens() -> None:
        while True:
            await asyncio.sleep(token_poll_s)
            await enforce_tokens(tokens, hub)
            report_suppressed()

    async def start_hub(app: web.Application) -> None:
        hub.start()
        watchers.add(asyncio.ensure_future(watch_tokens()))

    async def stop_hub(app: web.Application) -> None:
        for task in watchers:
            task.cancel()
        report_suppressed(force=True)
        await hub.close()

    watchers: set[asyncio.Task[None]] = set()

    app.on_startup.append(start_hub)
    app.on_shutdown.append(stop_hub)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/login", login)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/queues", list_queues)
    app.router.add_get("/queues/{queue}/ewt", queue_ewt)
    app.router.add_get("/agents", list_agents)
    app.router.add_get("/agents/{agent}/state", get_agent_state)
    app.router.add_post("/agents/{agent}/state", set_agent_state)
    app.router.add_get("/calls/{call}/context", call_context)
    app.router.add_get("/ws/agent", ws_agent)
    app.router.add_get("/ws/supervisor", ws_supervisor)
    app.router.add_get("/agent", agent_page)
    app.router.add_get("/dashboard", dashboard_page)
    return app
