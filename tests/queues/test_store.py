"""The same behaviour from both stores (memory, real redis-server), then what only Redis gives: sharing and restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from voicebot.queues.acd import Acd, QueueFull
from voicebot.queues.service import AcdService, AssignmentOffered
from voicebot.queues.store import MemoryStore, RedisStore


@pytest_asyncio.fixture(params=["memory", "redis"])
async def store(request, redis_url, namespace) -> AsyncIterator[MemoryStore | RedisStore]:
    if request.param == "memory":
        backend: MemoryStore | RedisStore = MemoryStore()
    else:
        backend = RedisStore.from_url(redis_url, namespace)
    yield backend
    if isinstance(backend, RedisStore):
        await backend.clear()
    await backend.close()


def _acd(agents_config, queues_config):
    return lambda state: Acd(agents_config, queues_config, state)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_transaction_commits_and_reloads(store, agents_config, queues_config):
    make = _acd(agents_config, queues_config)
    position = await store.transact(lambda s: make(s).enqueue("c1", "cards", ["lang:en-US"], 0, "ctx1", 5.0))
    assert position.position == 1
    await store.transact(lambda s: make(s).agent_state("a1", "available", 6.0))
    state = await store.load()
    assert state.entries["c1"].skills == ["lang:en-US"] and state.entries["c1"].context_id == "ctx1"
    assert state.agents["a1"].state == "available" and state.agents["a1"].idle_since == 6.0
    assignment = await store.transact(lambda s: make(s).next_assignment(7.0))
    state = await store.load()
    assert state.entries == {} and state.assignments[assignment.id].agent_id == "a1"
    assert state.agents["a1"].state == "reserved"


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_failed_transaction_changes_nothing(store, agents_config, queues_config):
    make = _acd(agents_config, queues_config)
    for index in range(3):
        await store.transact(lambda s, i=index: make(s).enqueue(f"c{i}", "cards", (), 0, "", float(i)))

    def enqueue_two(state):
        acd = make(state)
        acd.agent_state("a1", "available", 10.0)
        acd.enqueue("c9", "cards", (), 0, "", 10.0)  # the 4th caller: queue full

    with pytest.raises(QueueFull):
        await store.transact(enqueue_two)
    state = await store.load()
    assert sorted(state.entries) == ["c0", "c1", "c2"]
    assert state.agents["a1"].state == "offline"  # the agent change inside the failed transaction is gone too


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_context_round_trip(store):
    await store.put_context("ctx_1", {"intents": ["lost_card"], "slots": {"last4": "****"}})
    assert await store.get_context("ctx_1") == {"intents": ["lost_card"], "slots": {"last4": "****"}}
    assert await store.get_context("ctx_missing") is None


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_redis_keys_are_namespaced_and_state_survives_a_new_process(redis_url, namespace, agents_config, queues_config):
    make = _acd(agents_config, queues_config)
    first = RedisStore.from_url(redis_url, namespace)
    await first.transact(lambda s: make(s).enqueue("c1", "cards", (), 3, "ctx", 1.0))
    await first.put_context("ctx", {"a": 1})
    keys = sorted([key async for key in first._redis.scan_iter(match=f"voicebot:{namespace}:*")])
    assert keys == [f"voicebot:{namespace}:{k}" for k in ("agents", "context:ctx", "entries", "stats")]
    await first.close()
    second = RedisStore.from_url(redis_url, namespace)  # as after a voicebot restart
    state = await second.load()
    assert state.entries["c1"].priority == 3 and await second.get_context("ctx") == {"a": 1}
    other = RedisStore.from_url(redis_url, namespace + "x")
    assert (await other.load()).entries == {}
    await second.clear()
    await second.close()
    await other.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_state_survives_redis_server_restart(redis_server, agents_config, queues_config):
    store = RedisStore.from_url(redis_server.url, "restart")
    await store.transact(lambda s: _acd(agents_config, queues_config)(s).enqueue("c1", "cards", (), 0, "", 1.0))
    await store.close()
    redis_server.stop()
    redis_server.start()
    store = RedisStore.from_url(redis_server.url, "restart")
    assert list((await store.load()).entries) == ["c1"]
    await store.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_two_nodes_share_callers_and_agents(redis_url, namespace, agents_config, queues_config):
    """A caller enqueued on node A is assigned to an agent freed on node B; A learns it must ring the agent."""
    store_a = RedisStore.from_url(redis_url, namespace)
    store_b = RedisStore.from_url(redis_url, namespace)
    node_a = AcdService(store_a, agents_config, queues_config, node="A")
    node_b = AcdService(store_b, agents_config, queues_config, node="B")
    seen_a: list[AssignmentOffered] = []
    node_a.subscribe(lambda e: seen_a.append(e) if isinstance(e, AssignmentOffered) else None)
    await node_a.enqueue("caller-on-a", "loans", ["lang:en-US"], context_id="ctx-a")
    assert (await node_b.position("caller-on-a")).position == 1  # B sees A's caller
    await node_b.set_agent_state("a3", "available")
    state = await store_b.load()
    (assignment,) = state.assignments.values()
    assert (assignment.call_id, assignment.agent_id, assignment.node) == ("caller-on-a", "a3", "A")
    await node_a.step()
    assert [e.assignment.id for e in seen_a] == [assignment.id] and seen_a[0].agent.id == "a3"
    await node_a.agent_answered(assignment.id)
    assert (await store_b.load()).agents["a3"].state == "busy"
    for s in (store_a, store_b):
        await s.close()
    cleanup = RedisStore.from_url(redis_url, namespace)
    await cleanup.clear()
    await cleanup.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_nodes_racing_for_one_agent_exactly_one_wins(redis_url, namespace, agents_config, queues_config):
    stores = [RedisStore.from_url(redis_url, namespace) for _ in range(4)]
    services = [AcdService(s, agents_config, queues_config, node=f"n{i}") for i, s in enumerate(stores)]
    await asyncio.gather(*(svc.enqueue(f"c{i}", "loans") for i, svc in enumerate(services)))
    await services[0].set_agent_state("a3", "available")  # the only loans agent
    await asyncio.gather(*(svc.step() for svc in services))
    state = await stores[0].load()
    assert len(state.assignments) == 1 and len(state.entries) == 3
    assert [a.agent_id for a in state.assignments.values()] == ["a3"]
    await stores[0].clear()
    for s in stores:
        await s.close()
