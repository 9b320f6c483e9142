"""Announcements from one shared snapshot: same answers as a full decode, fresh after every change, and the
ACD loop skips its O(callers) transaction when nothing is due (MemoryStore)."""

from __future__ import annotations

import pytest

from voicebot.queues.acd import Acd, MaxWaitReached, Overflowed
from voicebot.queues.ewt import announce, estimate
from voicebot.queues.service import AcdService, AssignmentOffered
from voicebot.queues.snapshot import QueueSnapshot
from voicebot.queues.state import QueueStats
from voicebot.queues.store import MemoryStore


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingStore(MemoryStore):
    """A MemoryStore that counts full loads and transactions (each decodes every record)."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0
        self.transactions = 0

    async def load(self):
        self.loads += 1
        return await super().load()

    async def transact(self, fn):
        self.transactions += 1
        return await super().transact(fn)


class VersionlessStore:
    """Like a shared store: it has no version, so it cannot tell whether another node changed the state."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.loads = 0

    async def load(self):
        self.loads += 1
        return await self.inner.load()

    async def transact(self, fn):
        return await self.inner.transact(fn)


def _mixed_state(agents_config, queues_config):
    acd = Acd(agents_config, queues_config)
    for index in range(3):
        acd.enqueue(f"cards-{index}", "cards", (), 0, "", 10.0 + index)
    for index in range(6):
        acd.enqueue(f"gen-{index}", "general", (), index % 3, "", 20.0 - index)
    acd.enqueue("loans-1", "loans", ["loans>=3"], 0, "", 5.0)
    acd.state.entries["gen-4"].head = True  # put back at the head after an agent did not answer
    acd.agent_state("a1", "available", 40.0)
    acd.state.stats["general"] = QueueStats(handled=8, aht_s=180.0, answered=6, abandoned=2,
                                            total_answer_wait_s=300.0, total_abandon_wait_s=100.0)
    return acd


def test_snapshot_positions_and_ewt_match_a_full_decode(agents_config, queues_config):
    acd = _mixed_state(agents_config, queues_config)
    snapshot = QueueSnapshot(agents_config, queues_config, acd.state)
    for call_id in acd.state.entries:
        assert snapshot.position(call_id, 50.0) == acd.position(call_id, 50.0)
    assert snapshot.position("nobody", 50.0) is None
    general = [p.call_id for p in acd.positions("general", 50.0)]
    assert general == ["gen-5", "gen-2", "gen-4", "gen-1", "gen-3", "gen-0"] and [snapshot.position(c, 50.0).position for c in general] == list(range(1, 7))
    staffed, available = acd.staffed("general")
    assert (staffed, available) == (1, 1)
    stats = acd.state.stats["general"]
    for position in range(1, 7):
        expected = estimate(position, staffed, available, stats.aht_s, stats.handled, stats.patience_rate)
        assert snapshot.ewt("general", position) == expected
    assert snapshot.ewt("general", 1).high_s == 0.0 and snapshot.ewt("general", 5).high_s > 0  # one agent free
    assert snapshot.ewt("cards", 2) is None  # no handle-time data: no invented number


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_announcements_share_one_load_and_follow_every_change(agents_config, queues_config):
    store, clock = CountingStore(), Clock()
    service = AcdService(store, agents_config, queues_config, clock=clock)
    for index in range(3):
        clock.now += 1
        await service.enqueue(f"c{index}", "general")
    store.loads = 0
    results = [await service.announcement(f"c{index}") for index in range(3)]
    assert [r[0].position for r in results] == [1, 2, 3] and store.loads == 0  # the last commit's state is reused
    assert results[2][2] == announce(None, "en-US", 3) == "You are number 3 in the queue. We cannot estimate the wait right now."
    assert results[0][0].waiting_s == 2.0
    clock.now += 0.5
    assert (await service.announcement("c0"))[0].waiting_s == 2.5  # waiting time is computed now, not cached

    await service.abandon("c0")  # a change: the next announcement must see it at once
    assert [(await service.announcement(c))[0].position for c in ("c1", "c2")] == [1, 2]
    assert await service.announcement("c0") is None
    loads = store.loads

    other = AcdService(store, agents_config, queues_config, clock=clock, node="other")  # another writer
    await other.enqueue("first", "general", priority=9)
    assert (await service.announcement("c1"))[0].position == 2 and store.loads == loads + 1  # the version moved
    assert (await service.announcement("first"))[0].position == 1 and store.loads == loads + 1
    clock.now += 60
    assert (await service.announcement("c2"))[0].position == 3 and store.loads == loads + 1  # unchanged: no reload


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_store_without_version_is_reloaded_after_the_max_age(agents_config, queues_config):
    store, clock = VersionlessStore(), Clock()
    service = AcdService(store, agents_config, queues_config, clock=clock)
    await service.enqueue("c1", "general")
    other = AcdService(store, agents_config, queues_config, clock=clock, node="other")  # another node
    await other.enqueue("first", "general", priority=9)
    assert (await service.announcement("c1"))[0].position == 1 and store.loads == 0  # at most max age old
    clock.now += service.snapshot_max_age_s
    assert (await service.announcement("c1"))[0].position == 2 and store.loads == 1
    assert (await service.announcement("first"))[0].position == 1 and store.loads == 1


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_caller_missing_from_the_snapshot_is_looked_up_again(agents_config, queues_config):
    store, clock = MemoryStore(), Clock()
    service = AcdService(store, agents_config, queues_config, clock=clock)
    await service.enqueue("c1", "general")
    other = AcdService(store, agents_config, queues_config, clock=clock, node="other")
    await other.enqueue("c2", "general")
    result = await service.announcement("c2")  # enqueued elsewhere after this service's last commit
    assert result is not None and result[0].position == 2


def test_due_tells_exactly_when_tick_or_dispatch_would_change_something(agents_config, queues_config):
    acd = Acd(agents_config, queues_config)
    acd.enqueue("c1", "cards", (), 0, "", 0.0)
    assert not acd.due(100.0)  # nobody free, no timer expired
    assert acd.due(120.0) and acd.tick(120.0) == [Overflowed("c1", "cards", "general")]
    assert not acd.due(121.0)
    assert acd.due(300.0) and isinstance(acd.tick(300.0)[0], MaxWaitReached)
    assert not acd.due(301.0)
    acd.enqueue("loans", "loans", ["loans>=3"], 0, "", 302.0)
    acd.state.entries.pop("c1")
    acd.agent_state("a2", "available", 302.0)  # free, but cannot serve loans>=3
    assert not acd.due(303.0) and acd.next_assignment(303.0) is None
    acd.agent_state("a3", "available", 304.0)
    assert acd.due(304.0)
    assignment = acd.next_assignment(304.0)
    assert assignment is not None and assignment.agent_id == "a3"
    acd.agent_answered(assignment.id, 305.0)
    acd.call_ended("loans", 306.0)  # a3 has no wrap-up: free at once
    assert not acd.due(307.0)
    acd.agent_state("a2", "offline", 307.0)
    acd.enqueue("c3", "cards", (), 0, "", 308.0)
    acd.agent_state("a1", "available", 309.0)
    assignment = acd.next_assignment(309.0)
    acd.agent_answered(assignment.id, 310.0)
    acd.call_ended("c3", 311.0)  # a1 wraps up for 10 s
    assert not acd.due(320.0) and acd.due(321.0)
    assert acd.tick(321.0) and acd.state.agents["a1"].state == "available"


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_idle_steps_skip_the_transaction_but_timers_and_agents_still_act(agents_config, queues_config):
    store, clock = CountingStore(), Clock(0.0)
    service = AcdService(store, agents_config, queues_config, clock=clock)
    events: list = []
    service.subscribe(events.append)
    await service.enqueue("c1", "cards")
    store.transactions = 0
    for _ in range(20):
        clock.now += 1
        assert await service.step() == []
    assert store.transactions == 0
    clock.now = 300.0  # max wait: the timer fires through a real transaction
    published = await service.step()
    assert store.transactions == 1 and any(isinstance(e, MaxWaitReached) for e in published)
    await service.set_agent_state("a1", "available")
    offered = [e for e in events if isinstance(e, AssignmentOffered)]
    assert [e.assignment.call_id for e in offered] == ["c1"] and offered[0].agent.id == "a1"
    assert (await service.snapshot()).agents["a1"].state == "reserved"
