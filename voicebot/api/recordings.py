"""Call recordings over the API: admins and supervisors only, every access audited."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from voicebot.api.app import _error, audit, principal_of, roles

RECORDINGS_DIR_KEY = web.AppKey("recordings_dir", Path)


def recording_path(directory: Path, call_id: str) -> Path | None:
    """The stereo WAV of ``call_id`` (named as voicebot.recording.CallRecorder names it), if it exists."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in call_id)[:120]
    if not safe or safe.startswith("."):
        return None
    path = directory / f"{safe}.wav"
    return path if path.is_file() else None


@roles("admin", "supervisor")
async def get_recording(request: web.Request) -> web.StreamResponse:
    call_id = request.match_info["call"]
    principal = principal_of(request)
    path = recording_path(request.app[RECORDINGS_DIR_KEY], call_id)
    if path is None:
        audit("recording_missing", principal, call_id=call_id)
        return _error(404, "no recording for this call")
    audit("recording_read", principal, call_id=call_id, bytes=path.stat().st_size)
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "no-store"})


def add_recording_routes(app: web.Application, directory: Path) -> None:
    app[RECORDINGS_DIR_KEY] = directory
    app.router.add_get("/calls/{call}/recording", get_recording)
