"""ResilientStore against a real redis-server that the tests stop, freeze and start again: callers keep waiting
on local state while Redis is gone, and the reconcile writes every local change back (or logs the conflict)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from voicebot.api.app import create_app
from voicebot.api.tokens import TokenStore
from voicebot.queues.resilient import ResilientStore, put_back_transaction, missing_own_entries
from voicebot.queues.service import AcdService
from voicebot.queues.state import AcdState, Assignment, QueueEntry
from voicebot.queues.store import RedisStore

pytestmark = pytest.mark.timeout(60)


def _store(url: str, namespace: str, node: str = "n1", probe_min_s: float = 0.05) -> ResilientStore:
    return ResilientStore.from_url(url, namespace, node=node, probe_min_s=probe_min_s, probe_max_s=0.2,
                                   socket_timeout_s=0.5)


async def _until(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _shared(url: str, namespace: str) -> AcdState:
    """What Redis holds, read by a plain RedisStore (as another node would)."""
    reader = RedisStore.from_url(url, namespace)
    try:
        return await reader.load()
    finally:
        await reader.close()


def _entry(call_id: str, node: str) -> QueueEntry:
    return QueueEntry(call_id, "cards", 0, 1.0, 1.0, [], "", node)


def test_missing_own_entries_are_only_this_nodes_callers_unknown_to_the_shared_state():
    local = AcdState(entries={c: _entry(c, "n1") for c in ("waiting", "offered", "unknown", "callback")})
    local.entries["other"] = _entry("other", "n2")
    shared = AcdState(entries={"waiting": _entry("waiting", "n1")})
    shared.assignments["offered#1"] = Assignment("offered#1", "call", "offered", "a1", "cards", "", "n1", 0, 2.0, 1.0)
    from voicebot.queues.callbacks import CallbackTask

    shared.callbacks["cb:callback"] = CallbackTask(id="cb:callback", call_id="callback", number="+1555", queue="cards",
                                                   skills=[], priority=0, context_id="", node="n1", requested_at=1.0,
                                                   enqueued_at=1.0, not_before=1.0, max_attempts=3, path=[])
    # "callback": another node took n1 for lost and queued a callback, but the caller is still waiting on n1.
    assert [e.call_id for e in missing_own_entries(local, shared, "n1")] == ["unknown", "callback"]

    added = put_back_transaction(missing_own_entries(local, shared, "n1"))(shared)
    assert added == ["unknown", "callback"]
    assert set(shared.entries) == {"waiting", "unknown", "callback"} and not shared.callbacks


@pytest.mark.asyncio
async def test_callers_keep_waiting_while_redis_is_down_and_everything_is_written_back(
        redis_server, namespace, agents_config, queues_config, caplog):
    caplog.set_level(logging.INFO, logger="voicebot.queues.store")
    store = _store(redis_server.url, namespace)
    service = AcdService(store, agents_config, queues_config, node="n1")
    await service.enqueue("c1", "cards", ["lang:en-US"], context_id="ctx1")
    await service.enqueue("c2", "cards", ["lang:en-US"], context_id="ctx2")
    assert store.mode == "normal"

    redis_server.stop()
    # The next operation finds Redis gone: served from the last state seen, one warning.
    await service.enqueue("c3", "loans", ["lang:en-US"], priority=1, context_id="ctx3")
    assert store.mode == "degraded" and store.dispatching is False
    assert [(p.call_id, p.position) for p in [await service.position(c) for c in ("c1", "c2", "c3")]] == [
        ("c1", 1), ("c2", 2), ("c3", 1)]
    await service.abandon("c1")  # a caller hangs up during the outage
    position, _ewt, sentence = await service.announcement("c2")
    assert position.position == 1 and sentence
    await store.put_context("ctx3", {"intents": ["loan"]})
    assert await store.get_context("ctx3") == {"intents": ["loan"]}
    # An agent comes online: no assignment while degraded (another node may hold them), the caller waits.
    await service.set_agent_state("a1", "available")
    await service.step()
    local = await service.snapshot()
    assert local.assignments == {} and local.agents["a1"].state == "available"
    assert await store.reconcile() is False  # still down: nothing lost, nothing replayed twice
    journal = store.journal_length
    assert journal == 3
    warnings = [r for r in caplog.records if r.getMessage().startswith("queue store degraded")]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert warnings[0].fields["redis"] == f"127.0.0.1:{redis_server.port}"  # type: ignore[attr-defined]

    redis_server.start()  # same port, same append-only file
    await _until(lambda: store.mode == "normal")
    shared = await _shared(redis_server.url, namespace)
    assert sorted(shared.entries) == ["c2", "c3"]
    assert shared.entries["c3"].priority == 1 and shared.entries["c3"].node == "n1"
    assert shared.stats["cards"].abandoned == 1  # the abandon during the outage is counted
    assert shared.agents["a1"].state == "available"
    reader = RedisStore.from_url(redis_server.url, namespace)
    assert await reader.get_context("ctx3") == {"intents": ["loan"]}
    await reader.close()
    report = store.last_reconcile
    assert report is not None and (report.replayed, report.conflicts, report.contexts) == (3, [], 1)
    assert any(r.getMessage().startswith("queue store back to normal") for r in caplog.records)
    # Back to normal: the waiting caller is now served.
    await service.step()
    (assignment,) = (await _shared(redis_server.url, namespace)).assignments.values()
    assert (assignment.call_id, assignment.agent_id) == ("c2", "a1")
    await store.close()


@pytest.mark.asyncio
async def test_conflicts_resolve_to_the_shared_state_and_no_caller_is_dropped(
        redis_server, namespace, agents_config, queues_config, caplog):
    caplog.set_level(logging.INFO, logger="voicebot.queues.store")
    store = _store(redis_server.url, namespace, node="A", probe_min_s=60)  # reconciled by hand below
    node_a = AcdService(store, agents_config, queues_config, node="A")
    await node_a.set_agent_state("a1", "available")
    await node_a.enqueue("a-ringing", "cards", ["lang:en-US"])  # offered to a1 at once; node A rings a1
    (offered,) = (await store.load()).assignments.values()

    redis_server.stop()
    await node_a.agent_no_answer(offered.id)  # a1 did not answer: back to the head, on A's local copy
    await node_a.enqueue("a-late", "cards", ["lang:en-US"])
    assert store.mode == "degraded"
    redis_server.start()

    # Before A reconciles, node B (Redis reachable) takes a1 offline (which requeues the caller there too) and
    # fills the cards queue (max 3) with its own callers.
    other = RedisStore.from_url(redis_server.url, namespace)
    node_b = AcdService(other, agents_config, queues_config, node="B")
    await node_b.set_agent_state("a1", "offline")
    await node_b.enqueue("b1", "cards")
    await node_b.enqueue("b2", "cards")
    assert await store.reconcile() is True
    report = store.last_reconcile
    assert report is not None
    # A's no-answer found no such assignment any more, and A's enqueue found the queue full: both conflicts logged.
    assert [c.split(":")[0] for c in report.conflicts] == ["UnknownAssignment", "QueueFull"]
    assert len([r for r in caplog.records if "reconcile conflict" in r.getMessage()]) == 2
    # Redis wins for the agent; A's caller who is on the line is put back rather than dropped.
    assert report.put_back == ["a-late"]
    shared = await other.load()
    assert sorted(shared.entries) == ["a-late", "a-ringing", "b1", "b2"]
    assert shared.entries["a-ringing"].head and shared.entries["a-ringing"].tried_agents == ["a1"]
    assert shared.agents["a1"].state == "offline" and shared.agents["a1"].no_answers == 1  # counted once
    assert shared.assignments == {}
    await other.close()
    await store.close()


@pytest.mark.asyncio
async def test_a_frozen_redis_times_out_into_degraded_mode_and_readyz_metrics_say_so(
        redis_server, namespace, agents_config, queues_config, tmp_path):
    store = _store(redis_server.url, namespace)
    service = AcdService(store, agents_config, queues_config, node="n1")
    await service.enqueue("c1", "cards")
    tokens = TokenStore.load(tmp_path / "tokens.json")
    admin = tokens.create("admin")
    app = create_app(service, tokens)
    assert redis_server.process is not None
    pid = redis_server.process.pid
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/readyz")
        assert (response.status, await response.json()) == (200, {"status": "ready", "store": "normal"})
        os.kill(pid, signal.SIGSTOP)  # Redis hangs: no refusal, only silence
        try:
            started = time.monotonic()
            await service.enqueue("c2", "cards")
            assert store.mode == "degraded" and time.monotonic() - started < 5
            response = await client.get("/readyz")
            assert (response.status, await response.json()) == (200, {"status": "ready", "store": "degraded"})
            metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {admin}"})
            assert "voicebot_queue_store_degraded 1" in await metrics.text()
        finally:
            os.kill(pid, signal.SIGCONT)
        await _until(lambda: store.mode == "normal")
        metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {admin}"})
        assert "voicebot_queue_store_degraded 0" in await metrics.text()
    assert sorted((await _shared(redis_server.url, namespace)).entries) == ["c1", "c2"]
    await store.close()
