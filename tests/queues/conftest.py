"""Fixtures for queue tests: agents/queues configs and a real redis-server of our own on a free port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicebot.queues.models import AgentsConfig, QueuesConfig

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server process in a temp dir; stop() and start() again on the same port (restart tests)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """$VOICEBOT_TEST_REDIS_URL when set, else a redis-server started for this test session."""
    configured = os.environ.get("VOICEBOT_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server (append-only file on) that a test may stop and start."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def namespace() -> str:
    return "test" + uuid.uuid4().hex[:12]


@pytest.fixture
def agents_config() -> AgentsConfig:
    return AgentsConfig.model_validate({"agents": [
        {"id": "a1", "name": "Alice", "sip_uri": "sip:alice@127.0.0.1:5071", "skills": {"cards": 5, "loans": 2},
         "languages": ["en-US"], "wrap_up_s": 10},
        {"id": "a2", "name": "Bo", "sip_uri": "sip:bo@127.0.0.1:5072", "skills": {"cards": 3},
         "languages": ["zh-CN", "en-US"], "wrap_up_s": 10},
        {"id": "a3", "name": "Carla", "browser": True, "skills": {"loans": 5}, "languages": ["en-US"], "wrap_up_s": 0},
    ]})


@pytest.fixture
def queues_config() -> QueuesConfig:
    return QueuesConfig.model_validate({"queues": [
        {"name": "cards", "skills": ["cards"], "priority_rules": {"vip": 10, "emergency": 100},
         "overflow": {"queue": "general", "after_s": 120}, "max_size": 3, "max_wait_s": 300},
        {"name": "loans", "skills": ["loans>=3"]},
        {"name": "general", "skills": []},
    ]})
