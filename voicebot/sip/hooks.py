"""Multi-subscriber hooks: every subscriber is called, in subscription order; one that raises is logged and the
others still run. ``subscribe`` returns the function that takes the subscription back."""

from __future__ import annotations

import logging
from typing import Callable, Generic, ParamSpec

log = logging.getLogger("voicebot.sip.hooks")

P = ParamSpec("P")
Unsubscribe = Callable[[], None]


class Hook(Generic[P]):
    """One event with any number of subscribers (``Hook[[str, str]]`` takes ``(digit, source)`` callbacks)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._subscribers: list[Callable[P, None]] = []

    def subscribe(self, callback: Callable[P, None]) -> Unsubscribe:
        entry = callback  # the same function subscribed twice is two subscriptions, each taken back alone
        self._subscribers.append(entry)

        def unsubscribe() -> None:
            for i, subscriber in enumerate(self._subscribers):
                if subscriber is entry:
                    del self._subscribers[i]
                    return

        return unsubscribe

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for callback in list(self._subscribers):  # a subscriber may unsubscribe itself while being called
            try:
                callback(*args, **kwargs)
            except Exception:  # noqa: BLE001 - one subscriber's bug never silences the others
                log.exception("%s subscriber failed", self.name)

    def clear(self) -> None:
        self._subscribers.clear()

    def __len__(self) -> int:
        return len(self._subscribers)
