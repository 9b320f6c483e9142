"""Call recordings over the API: admins and supervisors only, every access audited."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from voicebot.api.app import Principal, _error, audit, principal_of, roles
from voicebot.calls.recording import find_recording_by_id, find_recordings, recording_call_id

RECORDINGS_DIR_KEY = web.AppKey("recordings_dir", Path)


def recording_path(directory: Path, call_id: str) -> Path | None:
    """The latest stereo WAV of exactly ``call_id`` (voicebot.calls.recording names and tags it), if it exists."""
    found = find_recordings(directory, call_id)
    return found[-1] if found else None


@roles("admin", "supervisor")
async def get_recording(request: web.Request) -> web.StreamResponse:
    call_id = request.match_info["call"]
    principal = principal_of(request)
    found = find_recordings(request.app[RECORDINGS_DIR_KEY], call_id)
    if not found:
        audit("recording_missing", principal, call_id=call_id)
        return _error(404, "no recording for this call")
    if len(found) > 1:  # one Call-ID reused by several calls: the caller must pick one by recording id
        ids = [p.name.rsplit(".", 2)[1] for p in found]
        audit("recording_ambiguous", principal, call_id=call_id, recordings=ids)
        return web.json_response({"error": "several recordings for this Call-ID; fetch /recordings/{id}",
                                  "recordings": ids}, status=409)
    return _send(found[0], principal, call_id=call_id)


@roles("admin", "supervisor")
async def get_recording_by_id(request: web.Request) -> web.StreamResponse:
    recording_id = request.match_info["recording"]
    principal = principal_of(request)
    path = find_recording_by_id(request.app[RECORDINGS_DIR_KEY], recording_id)
    if path is None:
        audit("recording_missing", principal, recording=recording_id)
        return _error(404, "no such recording")
    return _send(path, principal, call_id=recording_call_id(path) or "", recording=recording_id)


def _send(path: Path, principal: Principal, **fields: object) -> web.StreamResponse:
    audit("recording_read", principal, bytes=path.stat().st_size, **fields)
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "no-store"})


def add_recording_routes(app: web.Application, directory: Path) -> None:
    app[RECORDINGS_DIR_KEY] = directory
    app.router.add_get("/calls/{call}/recording", get_recording)
    app.router.add_get("/recordings/{recording}", get_recording_by_id)
