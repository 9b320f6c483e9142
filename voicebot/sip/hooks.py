"""Multi-subscriber hooks: every subscriber is called, in subscription order; one that raises is logged and the
others still run. ``subscribe`` returns the function that takes the subscription back."""

from __future__ import annotations

import logging
from typing import Callable, Generic, Never, ParamSpec

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


class Removed:
    """A class attribute standing for a removed single-slot callback: reading or assigning it raises with the
    replacement, so code written against the old slot (a branch merged later) fails loudly instead of setting an
    attribute nobody reads. Delete these once no branch predates the change."""

    def __init__(self, replacement: str) -> None:
        self.replacement = replacement
        self.name = "?"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = f"{owner.__name__}.{name}"

    def __get__(self, instance: object, owner: type | None = None) -> Never:
        raise AttributeError(f"{self.name} was removed: use {self.replacement}")

    def __set__(self, instance: object, value: Never) -> None:  # Never: mypy flags any assignment too
        raise AttributeError(f"{self.name} was removed: use {self.replacement}")
