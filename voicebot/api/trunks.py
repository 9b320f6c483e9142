"""GET /trunks: each outbound trunk's proxies and their health (OPTIONS checks); the same as gauges in /metrics."""

from __future__ import annotations

from aiohttp import web

from voicebot.api.app import EXTRA_METRICS_KEY, roles
from voicebot.sip.proxyhealth import TrunkRoutes

TRUNK_ROUTES_KEY = web.AppKey("trunk_routes", TrunkRoutes)


@roles("admin", "supervisor")
async def list_trunks(request: web.Request) -> web.Response:
    return web.json_response({"trunks": request.app[TRUNK_ROUTES_KEY].snapshot()})


def add_trunk_routes(app: web.Application, routes: TrunkRoutes) -> None:
    app[TRUNK_ROUTES_KEY] = routes
    app[EXTRA_METRICS_KEY].append(routes.prometheus)
    app.router.add_get("/trunks", list_trunks)
