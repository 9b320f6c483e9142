"""PostgreSQL fixtures for the call-record tests (see pg.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.records.pg import fresh_database, server_dsn


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    with server_dsn() as dsn:
        yield dsn


@pytest.fixture
def postgres_dsn(postgres_server: str) -> Iterator[str]:
    with fresh_database(postgres_server) as dsn:
        yield dsn
