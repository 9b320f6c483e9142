"""One decoded ACD state indexed for announcements: every waiting caller's position and each queue's staffing,
computed once and shared by all callers' announcements (O(1) lookups instead of a decode per announcement).

    snapshot = QueueSnapshot(agents_config, queues_config, state)
    snapshot.position("call-1", now)   # Position | None, same answer as Acd(...).position on that state
    snapshot.ewt("cards", 3)           # Ewt | None, same answer as AcdService.ewt on that state

Pure: no I/O, the clock is passed in. The index is built lazily on the first lookup.
"""

from __future__ import annotations

from voicebot.queues.acd import Acd, Position, _order
from voicebot.queues.ewt import Ewt, estimate
from voicebot.queues.models import AgentsConfig, QueuesConfig
from voicebot.queues.state import AcdState

__all__ = ["QueueSnapshot"]


class QueueSnapshot:
    """Positions and staffing of one AcdState (which must not be mutated afterwards)."""

    def __init__(self, agents: AgentsConfig, queues: QueuesConfig, state: AcdState) -> None:
        self._acd = Acd(agents, queues, state)
        self.state = state
        self._places: dict[str, tuple[str, int, float]] | None = None  # call_id -> (queue, position, enqueued_at)
        self._staffed: dict[str, tuple[int, int]] = {}
        self._ewts: dict[tuple[str, int], Ewt | None] = {}

    def _index(self) -> dict[str, tuple[str, int, float]]:
        if self._places is None:
            places: dict[str, tuple[str, int, float]] = {}
            counts: dict[str, int] = {}
            for entry in sorted(self.state.entries.values(), key=_order):
                counts[entry.queue] = counts.get(entry.queue, 0) + 1
                places[entry.call_id] = (entry.queue, counts[entry.queue], entry.enqueued_at)
            self._places = places
        return self._places

    def position(self, call_id: str, now: float) -> Position | None:
        """The caller's place in their queue (1 = next), or None when they are not waiting in this state."""
        place = self._index().get(call_id)
        if place is None:
            return None
        queue, position, enqueued_at = place
        return Position(call_id, queue, position, max(0.0, now - enqueued_at))

    def ewt(self, queue: str, position: int) -> Ewt | None:
        """Estimated wait at `position` in `queue` (raises UnknownQueue for a queue not configured)."""
        key = (queue, position)
        if key not in self._ewts:
            staffed = self._staffed.get(queue)
            if staffed is None:
                staffed = self._staffed[queue] = self._acd.staffed(queue)
            stats = self.state.stats.get(queue)
            if stats is None:
                self._ewts[key] = estimate(position, staffed[0], staffed[1], None, 0)
            else:
                self._ewts[key] = estimate(position, staffed[0], staffed[1], stats.aht_s, stats.handled,
                                           stats.patience_rate)
        return self._ewts[key]
