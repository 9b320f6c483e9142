"""The pages and the API of a running server send CSP, X-Frame-Options and Referrer-Policy, and a Server header
without versions; each page's CSP allows exactly its own inline script/style blocks (by hash)."""

from __future__ import annotations

import base64
import hashlib
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.support import start_server, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def fetch(port: int, path: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def inline_hashes(html: str) -> set[str]:
    blocks = re.findall(r"<script>(.*?)</script>|<style>(.*?)</style>", html, re.DOTALL)
    return {"'sha256-" + base64.b64encode(hashlib.sha256((a or b).encode()).digest()).decode() + "'"
            for a, b in blocks}


def test_pages_and_api_send_security_headers(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        port = server.wait_for("api listening")[0]["port"]
        for page in ("/agent", "/dashboard", "/call"):
            status, headers, html = fetch(port, page)
            assert status == 200 and "<html" in html.lower()
            csp = headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
            hashes = inline_hashes(html)
            assert hashes and all(h in csp for h in hashes), (page, csp)
            assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "no-referrer"
            assert headers["Server"] == "voicebot", headers["Server"]
        for path in ("/healthz", "/queues", "/no-such-path", "/call.js"):
            status, headers, _ = fetch(port, path)
            assert headers["Server"] == "voicebot" and headers["X-Frame-Options"] == "DENY", (path, headers)
            assert headers["Content-Security-Policy"].startswith("default-src 'none'"), (path, headers)
    finally:
        stop_server(server)
