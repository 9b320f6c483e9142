"""aiohttp routes of the "call us" page: GET /call (page + script), GET /webrtc/config, POST /webrtc/offer.

Signalling is one request: the page gathers its ICE candidates, posts the complete offer, and gets the complete
answer (aiortc gathers before answering), so no trickle ICE is needed. Each accepted offer becomes a
:class:`WebRtcChannel` handed to ``on_call``; the channel is closed when ``on_call`` returns.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Sequence

from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from voicebot.channels.base import Channel
from voicebot.channels.webrtc import WebRtcChannel
from voicebot.web.protocol import ProtocolError, parse_offer

log = logging.getLogger("voicebot.web")

STATIC_DIR = Path(__file__).parent / "static"
OnCall = Callable[[Channel], Awaitable[None]]
IceServerSpec = Mapping[str, Any]  # {"urls": "turn:...", "username": "...", "credential": "..."}
CALLS_KEY = web.AppKey("webrtc_calls", set)

_PUBLIC = "voicebot_public"  # same marker as voicebot.api.app.public: reachable without a token


def _public(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    setattr(handler, _PUBLIC, True)
    return handler


def ice_configuration(ice_servers: Sequence[IceServerSpec]) -> RTCConfiguration:
    """aiortc configuration; an empty list means host candidates only (no STUN/TURN, nothing leaves the LAN)."""
    servers = []
    for index, spec in enumerate(ice_servers):
        urls = spec.get("urls")
        if not urls or not isinstance(urls, (str, list)):
            raise ValueError(f"ice_servers[{index}] needs 'urls' (a stun:/turn: URL or a list of them), got {spec!r}")
        unknown = set(spec) - {"urls", "username", "credential"}
        if unknown:
            raise ValueError(f"ice_servers[{index}] has unknown keys {sorted(unknown)}; "
                             "allowed: urls, username, credential")
        servers.append(RTCIceServer(urls=urls, username=spec.get("username"), credential=spec.get("credential")))
    return RTCConfiguration(iceServers=servers)  # never None: aiortc would fall back to Google's STUN server


def add_webrtc_routes(app: web.Application, on_call: OnCall,
                      ice_servers: Sequence[IceServerSpec] = ()) -> None:
    """Serve the call page at /call and accept browser calls at POST /webrtc/offer."""
    configuration = ice_configuration(ice_servers)
    page_ice = [dict(spec) for spec in ice_servers]
    app[CALLS_KEY] = set()

    @_public
    async def call_page(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "call.html", headers={"Cache-Control": "no-cache"})

    @_public
    async def call_script(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "call.js", headers={"Cache-Control": "no-cache",
                                                                 "Content-Type": "text/javascript"})

    @_public
    async def config(_request: web.Request) -> web.StreamResponse:
        return web.json_response({"iceServers": page_ice})

    @_public
    async def offer(request: web.Request) -> web.StreamResponse:
        try:
            parsed = parse_offer(await request.text())
        except ProtocolError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        pc = RTCPeerConnection(configuration)
        channel = WebRtcChannel(pc, call_id=f"webrtc-{uuid.uuid4().hex[:16]}")
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=parsed.sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # noqa: BLE001 - aiortc's SDP parser fails with assert/Key/Value errors
            await channel.close()
            detail = str(exc) or type(exc).__name__
            return web.json_response({"error": f"cannot answer this offer: {detail}"}, status=400)
        task = asyncio.ensure_future(_run_call(channel, on_call))
        calls = app[CALLS_KEY]
        calls.add(task)
        task.add_done_callback(calls.discard)
        log.info("browser call answered", extra={"fields": {"call_id": channel.call_id,
                                                            "peer": request.remote or ""}})
        answer = pc.localDescription
        return web.json_response({"type": answer.type, "sdp": answer.sdp, "call_id": channel.call_id})

    async def hang_up_all(_app: web.Application) -> None:
        tasks = list(app[CALLS_KEY])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    app.router.add_get("/call", call_page)
    app.router.add_get("/call.js", call_script)
    app.router.add_get("/webrtc/config", config)
    app.router.add_post("/webrtc/offer", offer)
    app.on_shutdown.append(hang_up_all)


async def _run_call(channel: WebRtcChannel, on_call: OnCall) -> None:
    try:
        await on_call(channel)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - one failing call must not take the server down
        log.exception("browser call session failed", extra={"fields": {"call_id": channel.call_id}})
    finally:
        await channel.hangup()
