"""Heartbeats in a real redis-server, and recovery of a lost node's callers by the surviving nodes (exactly once)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from voicebot.queues.context import CallContextRecord
from voicebot.queues.liveness import NodeLiveness
from voicebot.queues.service import AcdService
from voicebot.queues.store import MemoryStore, RedisStore

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]

BEAT, TTL = 0.25, 1.5


@pytest_asyncio.fixture
async def stores(redis_url, namespace) -> AsyncIterator[list[RedisStore]]:
    made = [RedisStore.from_url(redis_url, namespace) for _ in range(3)]
    yield made
    await made[0].clear()
    for store in made:
        await store.close()


def node(store, name, agents_config, queues_config, allowed=("+1555*",)) -> AcdService:
    service = AcdService(store, agents_config, queues_config, node=name, poll_s=0.02)
    service.liveness = NodeLiveness(service, heartbeat_s=BEAT, ttl_s=TTL, callback_allowed=allowed)
    return service


async def queue_caller(service: AcdService, call_id: str, number: str | None, queue: str = "cards") -> str:
    record = CallContextRecord.new(call_id, number or "anonymous", "en-US", service.clock())
    record.add_turn("caller", "my card 4111 1111 1111 1111 was stolen")
    await service.put_context(record, callback_number=number)
    await service.enqueue(call_id, queue, context_id=record.context_id)
    return record.context_id


async def wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_heartbeats_expire_and_retire_removes_at_once(stores):
    store = stores[0]
    await store.heartbeat("host:5060", 100.5, 0.3)
    await store.heartbeat("node-b", 200.0, 5)
    assert await store.live_nodes() == {"host:5060": 100.5, "node-b": 200.0}
    await asyncio.sleep(0.45)
    assert await store.live_nodes() == {"node-b": 200.0}
    await store.retire("node-b")
    assert await store.live_nodes() == {}


async def test_memory_store_heartbeats_behave_the_same():
    store = MemoryStore()
    await store.heartbeat("a", 1.0, 0.2)
    assert await store.live_nodes() == {"a": 1.0}
    await asyncio.sleep(0.25)
    assert await store.live_nodes() == {}


async def test_lost_nodes_callers_become_callbacks_once_across_two_survivors(
        stores, agents_config, queues_config, caplog):
    a = node(stores[0], "node-a", agents_config, queues_config)
    b = node(stores[1], "node-b", agents_config, queues_config)
    c = node(stores[2], "node-c", agents_config, queues_config)
    for service in (a, b, c):
        await service.liveness.tick()
    await queue_caller(a, "a-1", "+15550100")
    ctx_b1 = await queue_caller(b, "b-1", "+15550101")
    await queue_caller(b, "b-2", None)  # withheld number: nothing to call back
    ctx_b3 = await queue_caller(b, "b-3", "+4930123", "general")  # not allowed by the callback policy here
    caplog.set_level(logging.INFO, logger="voicebot.queues.liveness")
    runs = [asyncio.create_task(a.run()), asyncio.create_task(c.run())]  # node-b stops beating: it is lost
    try:
        async def recovered() -> bool:
            state = await a.snapshot()
            return set(state.entries) == {"a-1"}
        await wait_for(recovered, timeout=TTL * 6)
    finally:
        for task in runs:
            task.cancel()
        for task in runs:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    state = await a.snapshot()
    assert list(state.callbacks) == ["cb:b-1"]
    task = state.callbacks["cb:b-1"]
    assert (task.number, task.context_id, task.state) == ("+15550101", ctx_b1, "pending")
    assert task.node in ("node-a", "node-c")  # the survivor that recovered it dials it
    assert state.stats["cards"].callbacks_requested == 1 and state.stats["cards"].abandoned == 0
    # Exactly once: one record per lost caller, written by whichever survivor committed.
    recovered_calls = a.liveness.recovered + c.liveness.recovered
    assert sorted(call.call_id for call in recovered_calls) == ["b-1", "b-2", "b-3"]
    records = [r for r in caplog.records if r.getMessage() == "call ended"]
    by_call = {r.fields["call_id"]: r.fields for r in records}  # type: ignore[attr-defined]
    assert len(records) == 3 and set(by_call) == {"b-1", "b-2", "b-3"}
    assert by_call["b-1"]["outcome"] == "node lost → callback queued" and by_call["b-1"]["lost_node"] == "node-b"
    assert by_call["b-2"]["outcome"] == by_call["b-3"]["outcome"] == "node lost → no callback number"
    assert by_call["b-3"]["context_id"] == ctx_b3
    assert "4111 1111 1111 1111" not in str(by_call) and "1111" in str(by_call["b-1"]["transcript"])  # masked
    # The survivor's own caller keeps its place: first in line.
    assert (await a.position("a-1")).position == 1


async def test_no_one_is_judged_lost_before_the_own_heartbeat_ran_a_full_ttl(stores, agents_config, queues_config):
    a = node(stores[0], "node-a", agents_config, queues_config)
    b = node(stores[1], "node-b", agents_config, queues_config)
    await b.enqueue("b-1", "cards")  # node-b never beat (as after a Redis restart, before its next beat)
    assert await a.liveness.tick() == []
    assert "b-1" in (await a.snapshot()).entries
    await asyncio.sleep(TTL + 0.05)
    lost = await a.liveness.tick()
    assert [call.call_id for call in lost] == ["b-1"]


async def test_a_restarted_node_recovers_the_callers_of_its_previous_process(stores, agents_config, queues_config):
    old = node(stores[0], "node-a", agents_config, queues_config)
    await old.liveness.tick()
    await queue_caller(old, "old-1", "+15550111")
    await asyncio.sleep(0.01)
    new = node(stores[1], "node-a", agents_config, queues_config)  # same node id, new process
    await new.liveness.tick()
    await queue_caller(new, "new-1", "+15550112")
    await asyncio.sleep(TTL + 0.05)
    lost = await new.liveness.tick()
    assert [call.call_id for call in lost] == ["old-1"]
    state = await new.snapshot()
    assert set(state.entries) == {"new-1"} and state.callbacks["cb:old-1"].node == "node-a"


async def test_heartbeat_must_be_shorter_than_the_ttl(agents_config, queues_config):
    from pydantic import ValidationError

    from voicebot.config import QueuesConfig as QueuesSection

    with pytest.raises(ValidationError, match="heartbeat_s"):
        QueuesSection.model_validate({"heartbeat_s": 6, "node_ttl_s": 6})
    assert QueuesSection.model_validate({}).heartbeat_s == 2
    service = AcdService(MemoryStore(), agents_config, queues_config)
    with pytest.raises(ValueError, match="below the TTL"):
        NodeLiveness(service, heartbeat_s=3, ttl_s=3)

    class NoHeartbeats:
        pass

    with pytest.raises(ValueError, match="keeps no node heartbeats"):
        NodeLiveness(AcdService(NoHeartbeats(), agents_config, queues_config))  # type: ignore[arg-type]
