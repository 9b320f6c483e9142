"""Fixtures for API tests: an ACD service on the in-memory store, tokens, and the aiohttp test client."""

from __future__ import annotations

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from voicebot.api.app import create_app
from voicebot.api.tokens import TokenStore
from voicebot.queues.models import AgentsConfig, QueuesConfig
from voicebot.queues.service import AcdService
from voicebot.queues.store import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(clock) -> AcdService:
    agents = AgentsConfig.model_validate({"agents": [
        {"id": "a1", "name": "Alice", "browser": True, "skills": {"cards": 5}, "languages": ["en-US"], "wrap_up_s": 5},
        {"id": "a2", "name": "Bob", "sip_uri": "sip:bob@127.0.0.1:5072", "skills": {"cards": 3}, "languages": ["en-US"]},
    ]})
    queues = QueuesConfig.model_validate({"queues": [{"name": "cards", "skills": ["cards"]}]})
    return AcdService(MemoryStore(), agents, queues, node="n1", clock=clock)


@pytest.fixture
def tokens(tmp_path) -> tuple[TokenStore, dict[str, str]]:
    store = TokenStore.load(tmp_path / "tokens.json")
    secrets = {
        "admin": store.create("admin"),
        "supervisor": store.create("supervisor"),
        "a1": store.create("agent", agent="a1"),
        "a2": store.create("agent", agent="a2"),
    }
    return store, secrets


@pytest_asyncio.fixture
async def client(service, tokens, clock):
    store, _ = tokens
    app = create_app(service, store, allowed_origins=["https://desk.example.com"], clock=clock)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
