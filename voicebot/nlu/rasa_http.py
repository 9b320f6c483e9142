"""`RasaHttpNlu`: the NluEngine over a running Rasa server's `POST /model/parse`.

Failures (connection refused, timeout, HTTP error, a response that is not Rasa's shape) raise
`RasaUnavailable`, so the session can fall back to the embedded engine.
"""

from __future__ import annotations

from typing import Any

import httpx

from voicebot.nlu.base import Entity, NluError, NluResult

__all__ = ["RasaHttpNlu", "RasaUnavailable", "result_from_rasa"]


class RasaUnavailable(NluError):
    """The Rasa server could not give an answer; fall back to another engine."""


class RasaHttpNlu:
    """Parse through Rasa; `intents` comes from the `/domain` endpoint (one request, then cached)."""

    def __init__(self, url: str, timeout: float = 2.0, *, threshold: float = 0.0, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.threshold = threshold
        self._params = {"token": token} if token else {}
        self._client = httpx.Client(timeout=timeout)
        self._intents: set[str] | None = None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RasaHttpNlu:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        target = f"{self.url}{path}"
        try:
            response = self._client.request(method, target, params=self._params, **kwargs)
        except httpx.TimeoutException as exc:
            raise RasaUnavailable(f"Rasa at {target} did not answer within {self.timeout} s") from exc
        except httpx.HTTPError as exc:
            raise RasaUnavailable(f"Rasa at {target} is unreachable: {exc}") from exc
        if response.status_code != 200:
            raise RasaUnavailable(f"Rasa at {target} answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            return response.json()
        except ValueError as exc:
            raise RasaUnavailable(f"Rasa at {target} answered with invalid JSON") from exc

    def parse(self, text: str, lang: str) -> NluResult:
        body = self._request("POST", "/model/parse", json={"text": text})
        return result_from_rasa(body, text, lang, self.threshold)

    def intents(self, lang: str) -> set[str]:
        if self._intents is None:
            body = self._request("GET", "/domain", headers={"Accept": "application/json"})
            names = body.get("intents") if isinstance(body, dict) else None
            if not isinstance(names, list):
                raise RasaUnavailable(f"Rasa at {self.url}/domain gave no 'intents' list")
            # Rasa lists intents as names or as {name: {properties}}
            self._intents = {n if isinstance(n, str) else next(iter(n)) for n in names if n}
        return set(self._intents)


def result_from_rasa(body: Any, text: str, lang: str, threshold: float = 0.0) -> NluResult:
    """Convert Rasa's parse response to an NluResult; raise RasaUnavailable on a malformed one."""
    try:
        intent = body.get("intent") or {}
        name = intent.get("name")
        confidence = float(intent.get("confidence") or 0.0)
        entities = tuple(
            Entity(
                str(e["entity"]), e.get("value"), text[int(e["start"]) : int(e["end"])],
                int(e["start"]), int(e["end"]),
            )
            for e in body.get("entities") or ()
        )
        ranking = tuple(
            (str(r["name"]), float(r["confidence"])) for r in body.get("intent_ranking") or ()
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RasaUnavailable(f"Rasa response is not in the /model/parse format: {exc!r}") from exc
    if name in (None, "", "nlu_fallback", "out_of_scope") or confidence < threshold:
        name = None
    return NluResult(text, name, confidence, entities, lang, ranking)
