"""Shared fixtures of the call-session tests: real speech workers and the demo NLU, once per module.

A module sets `POOL_SIZE` (default 1) for its worker pool and `ASR_MODEL` (default tiny.en).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Iterator

import pytest

from voicebot.nlu.base import NluEngine, load_nlu
from voicebot.speech.workers import SpeechWorkerPool

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pool(request: pytest.FixtureRequest) -> Iterator[SpeechWorkerPool]:
    size = getattr(request.module, "POOL_SIZE", 1)
    model = getattr(request.module, "ASR_MODEL", "tiny.en")
    workers = SpeechWorkerPool(size, asr_models=(model,))
    asyncio.run(workers.start())
    yield workers
    asyncio.run(workers.close())


@pytest.fixture(scope="module")
def nlu() -> NluEngine:
    engine = load_nlu(REPO / "nlu_models" / "demo")
    engine.parse("hello", "en")  # train once for the module
    return engine
