"""Security headers for every API response and a Content-Security-Policy for the three HTML pages.

Pages (/agent, /dashboard, /call) get a CSP that allows only their own scripts and styles: files from this origin
plus the inline ``<script>``/``<style>`` blocks of that page, by SHA-256 hash (no 'unsafe-inline'). Everything
else (JSON, audio, scripts) gets ``default-src 'none'``. All responses: no framing, no referrer, no sniffing, and a
``Server`` header without versions.

    secure_responses(app)                                          # once per app, before it starts
    web.FileResponse(path, headers=page_headers(path))             # an HTML page
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path

from aiohttp import web

__all__ = ["API_CSP", "SERVER_NAME", "page_csp", "page_headers", "secure_responses"]

SERVER_NAME = "voicebot"
API_CSP = "default-src 'none'; frame-ancestors 'none'"
_INLINE = re.compile(r"<(script|style)(\s[^>]*)?>(.*?)</\1\s*>", re.DOTALL | re.IGNORECASE)
_INSTALLED = web.AppKey("security_headers_installed", bool)


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def page_csp(html: str) -> str:
    """The CSP for one page: its own origin for scripts, API calls and WebSocket, plus hashes of inline blocks."""
    scripts, styles = [], []
    for match in _INLINE.finditer(html):
        kind, attributes, body = match.group(1).lower(), match.group(2) or "", match.group(3)
        if kind == "script" and "src=" not in attributes.lower():
            scripts.append(_sha256(body))
        elif kind == "style":
            styles.append(_sha256(body))
    return "; ".join([
        "default-src 'none'",
        " ".join(["script-src 'self'", *scripts]),
        " ".join(["style-src 'self'", *styles]),
        "connect-src 'self'",
        "img-src 'self' data:",
        "media-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


@functools.cache
def page_headers(path: Path) -> dict[str, str]:
    """Headers for serving the HTML page at ``path`` (its CSP, computed once)."""
    return {"Content-Security-Policy": page_csp(path.read_text(encoding="utf-8"))}


async def _harden(_request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers["Server"] = SERVER_NAME
    headers.setdefault("Content-Security-Policy", API_CSP)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Content-Type-Options", "nosniff")


def secure_responses(app: web.Application) -> None:
    """Add the headers to every response of ``app`` (idempotent)."""
    if not app.get(_INSTALLED):
        app.on_response_prepare.append(_harden)
        app[_INSTALLED] = True
