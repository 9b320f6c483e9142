"""Redis restarts *empty* under a running node: the queue state and the agents' screen-pop contexts come back
from the node's local copy, and the outage is reported once (a warning), not as an error on every heartbeat."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time

import pytest

from tests.queues.test_resilient import _shared, _store, _until
from voicebot.queues.liveness import NodeLiveness
from voicebot.queues.service import AcdService
from voicebot.queues.store import RedisStore

pytestmark = pytest.mark.timeout(60)


def wipe(redis_server) -> None:  # type: ignore[no-untyped-def]
    """Redis loses its data: the append-only file and any dump are deleted while it is stopped."""
    for path in redis_server.directory.iterdir():
        if path.name.startswith(("appendonly", "dump")):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


@pytest.mark.asyncio
async def test_redis_restarted_empty_gets_state_and_contexts_back_and_one_warning(
        redis_server, namespace, agents_config, queues_config, caplog):
    caplog.set_level(logging.INFO)
    store = _store(redis_server.url, namespace)
    service = AcdService(store, agents_config, queues_config, node="n1", poll_s=0.05)
    service.liveness = NodeLiveness(service, heartbeat_s=0.1, ttl_s=1.0)
    contexts = {f"ctx{i}": {"caller": f"+1555010{i}", "intents": ["lost_card"], "transcript": [f"turn {i}"]}
                for i in range(3)}  # the 'cards' queue holds 3
    for i, (context_id, data) in enumerate(contexts.items()):
        await store.put_context(context_id, data)
        await service.enqueue(f"c{i}", "cards", ["lang:en-US"], context_id=context_id)
    runner = asyncio.ensure_future(service.run())
    try:
        redis_server.stop()
        wipe(redis_server)
        await _until(lambda: store.mode == "degraded")
        # Heartbeats keep failing every 0.1 s while Redis is down: none of that is an ERROR with a traceback.
        quiet_until = time.monotonic() + 1.0
        while time.monotonic() < quiet_until:
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert not errors, [r.getMessage() for r in errors]
            await asyncio.sleep(0.05)
        warnings = [r for r in caplog.records if r.getMessage().startswith("queue store degraded")]
        assert len(warnings) == 1

        redis_server.start()  # empty: no append-only file any more
        await _until(lambda: store.mode == "normal")
        shared = await _shared(redis_server.url, namespace)
        assert sorted(shared.entries) == ["c0", "c1", "c2"]
        reader = RedisStore.from_url(redis_server.url, namespace)
        try:
            for context_id, data in contexts.items():  # what a screen-pop reads
                assert await reader.get_context(context_id) == data, context_id
        finally:
            await reader.close()
        report = store.last_reconcile
        assert report is not None and report.restored_state and report.restored_contexts == 3
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await store.close()
