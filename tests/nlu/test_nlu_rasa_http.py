"""RasaHttpNlu against a stand-in server (stdlib http.server on 127.0.0.1) speaking Rasa's format."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from voicebot.nlu.base import Entity, NluEngine
from voicebot.nlu.rasa_http import RasaHttpNlu, RasaUnavailable


class StandIn(BaseHTTPRequestHandler):
    """/model/parse answers by the text: 'slow' sleeps, 'boom' is a 500, 'junk' is not JSON."""

    requests: list[dict[str, object]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/domain"):
            self._send(200, json.dumps({"intents": ["greet", {"lost_card": {"use_entities": True}}]}).encode())
        else:
            self._send(404, b"{}")

    def do_POST(self) -> None:
        if not self.path.startswith("/model/parse"):
            self._send(404, b"{}")
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StandIn.requests.append({"path": self.path, "body": body})
        text = body["text"]
        if text == "slow":
            time.sleep(1.0)
        if text == "boom":
            self._send(500, b'{"error": "model not loaded"}')
            return
        if text == "junk":
            self._send(200, b"<html>", "text/html")
            return
        if text == "shape":
            self._send(200, json.dumps({"intent": {"name": "x"}, "entities": [{"entity": "e"}]}).encode())
            return
        start = text.find("Friday")
        reply = {
            "text": text,
            "intent": {"name": "lost_card" if "card" in text else "nlu_fallback", "confidence": 0.91},
            "entities": [{"entity": "date", "value": "2025-03-07", "start": start, "end": start + 6,
                          "extractor": "DucklingEntityExtractor"}] if start >= 0 else [],
            "intent_ranking": [{"name": "lost_card", "confidence": 0.91}, {"name": "greet", "confidence": 0.09}],
        }
        self._send(200, json.dumps(reply).encode())


@pytest.fixture()
def server_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(30)
def test_parse_maps_rasa_response(server_url: str) -> None:
    with RasaHttpNlu(server_url, timeout=2.0, token="secret") as nlu:
        assert isinstance(nlu, NluEngine)
        result = nlu.parse("I lost my card on Friday", "en")
    assert result.intent == "lost_card" and result.confidence == pytest.approx(0.91)
    assert result.entities == (Entity("date", "2025-03-07", "Friday", 18, 24),)
    assert result.ranking == (("lost_card", 0.91), ("greet", 0.09))
    assert StandIn.requests[-1] == {"path": "/model/parse?token=secret", "body": {"text": "I lost my card on Friday"}}


@pytest.mark.timeout(30)
def test_fallback_intent_is_none_and_intents_from_domain(server_url: str) -> None:
    with RasaHttpNlu(server_url) as nlu:
        assert nlu.parse("hmm", "en").intent is None
        assert nlu.intents("en") == {"greet", "lost_card"}


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("text", "message"),
    [("boom", "HTTP 500"), ("junk", "invalid JSON"), ("shape", "not in the /model/parse format"),
     ("slow", "did not answer within 0.3 s")],
)
def test_failures_raise_rasa_unavailable(server_url: str, text: str, message: str) -> None:
    with RasaHttpNlu(server_url, timeout=0.3) as nlu, pytest.raises(RasaUnavailable, match=message):
        nlu.parse(text, "en")


@pytest.mark.timeout(30)
def test_unreachable_server() -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with RasaHttpNlu(f"http://127.0.0.1:{port}", timeout=1.0) as nlu, pytest.raises(RasaUnavailable, match="unreachable"):
        nlu.parse("hi", "en")
