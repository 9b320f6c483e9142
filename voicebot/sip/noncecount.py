"""Replay protection for stateless digest nonces (RFC 7616 §3.4: the nonce count must increase).

Pure logic: the clock is passed in. A nonce is remembered from its first successful use until it expires; each
later use must carry a higher ``nc`` (the legacy no-qop form, which has no nc, is single-use).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class NonceCounts:
    """``accept(nonce, nc, expires_at, now)`` is True for a first use or an increased nc, False for a replay."""

    max_entries: int = 100_000
    _seen: dict[str, tuple[int, float]] = field(default_factory=dict)  # nonce -> (highest nc, expires at)

    def __len__(self) -> int:
        return len(self._seen)

    def accept(self, nonce: str, nc: int | None, expires_at: float, now: float) -> bool:
        """Record a verified use of ``nonce``; False when it replays an nc already seen (or the table is full)."""
        count = 1 if nc is None else nc
        previous = self._seen.get(nonce)
        if previous is not None and previous[1] > now:
            if nc is None or count <= previous[0]:
                return False
        elif len(self._seen) >= self.max_entries:
            self.prune(now)
            if len(self._seen) >= self.max_entries:
                return False  # no room to remember it: a fresh challenge is safer than an untracked nonce
        self._seen[nonce] = (count, expires_at)
        return True

    def prune(self, now: float) -> None:
        """Forget nonces that have expired (they are refused as stale anyway)."""
        self._seen = {n: v for n, v in self._seen.items() if v[1] > now}
