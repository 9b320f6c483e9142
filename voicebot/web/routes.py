"""aiohttp routes of the "call us" page: GET /call (page + script), GET /webrtc/config, POST /webrtc/offer.

Signalling is one request: the page gathers its ICE candidates, posts the complete offer, and gets the complete
answer (aiortc gathers before answering), so no trickle ICE is needed. Each accepted offer becomes a
:class:`WebRtcChannel` handed to ``on_call``; the channel is closed when ``on_call`` returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Sequence

from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from voicebot.api.headers import page_headers, secure_responses
from voicebot.channels.base import Channel
from voicebot.channels.webrtc import WebRtcChannel
from voicebot.web.admission import BrowserAdmission, BrowserLimits, Refused
from voicebot.web.media_bind import bound_to
from voicebot.web.protocol import ProtocolError, parse_offer

log = logging.getLogger("voicebot.web")

STATIC_DIR = Path(__file__).parent / "static"
OnCall = Callable[[Channel], Awaitable[None]]
IceServerSpec = Mapping[str, Any]  # {"urls": "turn:...", "username": "...", "credential": "..."}
CALLS_KEY = web.AppKey("webrtc_calls", set)
ADMISSION_KEY = web.AppKey("webrtc_admission", BrowserAdmission)

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
                      ice_servers: Sequence[IceServerSpec] = (), *, limits: BrowserLimits | None = None,
                      other_calls: Callable[[], int] = lambda: 0, media_host: str | None = None,
                      clock: Callable[[], float] = time.monotonic) -> BrowserAdmission:
    """Serve the call page at /call and accept browser calls at POST /webrtc/offer.

    Anonymous offers are bounded by ``limits`` (per source, per minute, and in total with ``other_calls``);
    media binds only ``media_host`` (None or a wildcard: every interface); a session whose browser does not
    connect within ``limits.connect_timeout_s`` is closed. Returns the admission counter (browser calls active).
    """
    configuration = ice_configuration(ice_servers)
    page_ice = [dict(spec) for spec in ice_servers]
    admission = BrowserAdmission(limits or BrowserLimits(), other_calls)
    app[CALLS_KEY] = set()
    app[ADMISSION_KEY] = admission
    secure_responses(app)

    @_public
    async def call_page(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "call.html", headers={"Cache-Control": "no-cache",
                                                                   **page_headers(STATIC_DIR / "call.html")})

    @_public
    async def call_script(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "call.js", headers={"Cache-Control": "no-cache",
                                                                 "Content-Type": "text/javascript"})

    @_public
    async def config(_request: web.Request) -> web.StreamResponse:
        return web.json_response({"iceServers": page_ice})

    @_public
    async def offer(request: web.Request) -> web.StreamResponse:
        if request.content_type != "application/json":  # forces a CORS preflight: other sites cannot post offers
            return web.json_response({"error": "send the offer as Content-Type: application/json"}, status=415)
        source = request.remote or "?"
        verdict = admission.admit(source, clock())
        if isinstance(verdict, Refused):
            return web.json_response({"error": verdict.reason}, status=verdict.status,
                                     headers={"Retry-After": str(verdict.retry_after_s)})
        try:
            answer = await _answer(request, source)
        except BaseException:
            admission.release(source)
            raise
        if answer.status != 200:  # refused offer: no call was started, its slot is free again
            admission.release(source)
        return answer

    async def _answer(request: web.Request, source: str) -> web.Response:
        try:
            parsed = parse_offer(await request.read())
        except ProtocolError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        pc = RTCPeerConnection(configuration)
        channel = WebRtcChannel(pc, call_id=f"webrtc-{uuid.uuid4().hex[:16]}")
        try:
            with bound_to(media_host):
                await pc.setRemoteDescription(RTCSessionDescription(sdp=parsed.sdp, type="offer"))
                await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # noqa: BLE001 - aiortc's SDP parser fails with assert/Key/Value errors
            await channel.close()
            detail = str(exc) or type(exc).__name__
            return web.json_response({"error": f"cannot answer this offer: {detail}"}, status=400)
        task = asyncio.ensure_future(_run_call(channel, on_call, admission.limits.connect_timeout_s,
                                               lambda: admission.release(source)))
        calls = app[CALLS_KEY]
        calls.add(task)
        task.add_done_callback(calls.discard)
        log.info("browser call answered", extra={"fields": {"call_id": channel.call_id, "peer": source}})
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
    return admission


async def wait_connected(pc: RTCPeerConnection, timeout_s: float, *, unless: asyncio.Future[Any] | None = None) -> bool:
    """Whether the browser's ICE and DTLS complete within ``timeout_s`` (False at once if the connection fails or
    ``unless`` finishes first)."""
    settled = asyncio.Event()

    def on_state() -> None:
        if pc.connectionState in ("connected", "failed", "closed"):
            settled.set()

    pc.on("connectionstatechange", on_state)
    waiter = asyncio.ensure_future(settled.wait())
    try:
        on_state()
        await asyncio.wait({waiter, *([unless] if unless is not None else [])}, timeout=timeout_s,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        pc.remove_listener("connectionstatechange", on_state)
    return pc.connectionState == "connected"


async def _session(channel: WebRtcChannel, on_call: OnCall) -> None:
    try:
        await on_call(channel)
    except Exception:  # one failing call must not take the server down
        log.exception("browser call session failed", extra={"fields": {"call_id": channel.call_id}})


async def _run_call(channel: WebRtcChannel, on_call: OnCall, connect_timeout_s: float,
                    release: Callable[[], None]) -> None:
    """Run the session at once (it greets while ICE completes); if the browser's media does not connect within
    ``connect_timeout_s``, hang up (the session ends as on any hang-up, or is cancelled 5 s later). Then free the
    call's slot."""
    session = asyncio.ensure_future(_session(channel, on_call))
    connected, state = True, ""
    try:
        connected = await wait_connected(channel.pc, connect_timeout_s, unless=session)
        state = channel.pc.connectionState
        if not connected:
            if not session.done():
                await channel.close()
                await asyncio.wait({session}, timeout=5.0)
            session.cancel()
        await asyncio.gather(session, return_exceptions=True)
    finally:
        session.cancel()
        await channel.hangup()
        release()
        if not connected:
            log.warning("browser call not connected", extra={"fields": {
                "call_id": channel.call_id, "state": state, "timeout_s": connect_timeout_s}})
