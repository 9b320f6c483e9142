"""GET /kb/search: a token is required (401 without), bad parameters are 400, each token is rate-limited (429 with
Retry-After), the search answers with scored articles, and 503 when no knowledge base is loaded."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from tests.api.conftest import bearer
from voicebot.api.app import create_app
from voicebot.api.knowledge import add_knowledge_routes
from voicebot.knowledge.base import KnowledgeBase, load_knowledge

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    root = tmp_path_factory.mktemp("kb")
    for collection in ("airline", "education"):
        shutil.copytree(REPO / "knowledge" / collection, root / collection)
    return load_knowledge(root, today=dt.date(2026, 12, 7), encoders={"en": None, "zh": None})  # TF-IDF only


@pytest_asyncio.fixture
async def kb_client(service, tokens, clock, kb):
    store, _ = tokens
    app = create_app(service, store, clock=clock)
    loaded: dict[str, KnowledgeBase | None] = {"kb": kb}
    add_knowledge_routes(app, lambda: loaded["kb"], per_window=5, window_s=10.0)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        client.loaded = loaded  # type: ignore[attr-defined]
        yield client


async def test_a_token_is_required(kb_client, tokens):
    _, secrets = tokens
    response = await kb_client.get("/kb/search", params={"q": "refund"})
    assert response.status == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    assert (await kb_client.get("/kb/search", params={"q": "refund"},
                                headers=bearer(secrets["a1"] + "x"))).status == 401


async def test_an_agent_searches_with_filters(kb_client, tokens):
    _, secrets = tokens
    response = await kb_client.get("/kb/search", headers=bearer(secrets["a1"]), params={
        "q": "my suitcase never arrived", "lang": "en-US", "collection": "airline", "k": "2"})
    assert response.status == 200
    body = await response.json()
    assert body["lang"] == "en" and len(body["hits"]) == 2
    top = body["hits"][0]
    assert top["id"] == "air-delayed-baggage-en" and top["version"] == 2 and top["score"] > body["hits"][1]["score"]
    assert top["short_answer"].startswith("Report a missing bag within 21 days")
    tagged = await (await kb_client.get("/kb/search", headers=bearer(secrets["supervisor"]), params={
        "q": "退款", "lang": "zh", "tags": "exam_fees"})).json()
    assert [hit["id"] for hit in tagged["hits"]] == ["edu-exam-fees-zh"]


@pytest.mark.parametrize("params", [{}, {"q": "x", "lang": "fr"}, {"q": "x", "tags": "Bad Tag"},
                                    {"q": "x", "k": "50"}, {"q": "x" * 501}])
async def test_bad_parameters_are_400(kb_client, tokens, params):
    _, secrets = tokens
    response = await kb_client.get("/kb/search", headers=bearer(secrets["admin"]), params=params)
    assert response.status == 400 and (await response.json())["error"]


async def test_each_token_is_rate_limited(kb_client, tokens, clock):
    _, secrets = tokens
    for _ in range(5):
        assert (await kb_client.get("/kb/search", headers=bearer(secrets["a1"]), params={"q": "refund"})).status == 200
    limited = await kb_client.get("/kb/search", headers=bearer(secrets["a1"]), params={"q": "refund"})
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
    assert (await kb_client.get("/kb/search", headers=bearer(secrets["a2"]), params={"q": "refund"})).status == 200
    clock.now += 11
    assert (await kb_client.get("/kb/search", headers=bearer(secrets["a1"]), params={"q": "refund"})).status == 200


async def test_no_knowledge_base_is_503(kb_client, tokens):
    _, secrets = tokens
    kb_client.loaded["kb"] = None
    response = await kb_client.get("/kb/search", headers=bearer(secrets["a1"]), params={"q": "refund"})
    assert response.status == 503
