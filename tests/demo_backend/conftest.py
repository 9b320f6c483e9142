"""Fixtures: the demo backend app behind aiohttp's in-process test server (loopback, a free port)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from voicebot.demo_backend.app import build_app
from voicebot.demo_backend.data import new_store

QUIET_DAY = dt.date(2026, 11, 10)


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TestClient]:
    """A client of a fresh backend whose date is a quiet (non-surge) day."""
    async with TestClient(TestServer(build_app(store=new_store(today=QUIET_DAY)))) as test_client:
        yield test_client
