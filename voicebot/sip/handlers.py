"""The UA's request handler table, keyed by method (the sipgo shape: ``srv.OnRequest(method, handler)``).

Each method has at most one *responder* — the function that answers the request — and any number of *observers*,
which see every admitted request of that method (in a dialog or not) before it is answered and must not answer it.
The UA installs default responders (its own OPTIONS answer, 481 for dialog methods outside a dialog, 480 for an
INVITE with no application); an application's :meth:`HandlerTable.handle` replaces the default and the
unsubscribe it returns puts the default back. The table's methods are what the UA supports: anything else gets
405/501 with ``Allow`` built from it.
"""

from __future__ import annotations

from typing import Callable, Protocol

from .hooks import Hook, Unsubscribe
from .message import SipRequest

Addr = tuple[str, int]


class Incoming(Protocol):
    """A request as a handler sees it: the message, where it came from, and a way to answer it."""

    @property
    def request(self) -> SipRequest: ...

    @property
    def source(self) -> Addr: ...

    def respond(self, status: int, reason: str | None = None, headers: list[tuple[str, str]] | None = None, *,
                contact: bool = False) -> None:
        """Answer in a server transaction (retransmissions get the same answer)."""


Responder = Callable[[Incoming], None]
Observer = Callable[[Incoming], None]


class HandlerTable:
    """Responders (one per method, defaults underneath) and observers (many per method)."""

    def __init__(self) -> None:
        self._defaults: dict[str, Responder] = {}
        self._responders: dict[str, Responder] = {}
        self._observers: dict[str, Hook[[Incoming]]] = {}

    def default(self, method: str, responder: Responder) -> None:
        """The responder used while no application has claimed ``method``."""
        self._defaults[method.upper()] = responder

    def handle(self, method: str, responder: Responder) -> Unsubscribe:
        """Claim ``method``: ``responder`` answers it until the returned function is called. One responder per
        method: a second claim raises ValueError (two answers to one request would break the transaction)."""
        key = method.upper()
        if key in self._responders:
            raise ValueError(f"{key} already has a responder")
        self._responders[key] = responder

        def unsubscribe() -> None:
            if self._responders.get(key) is responder:
                del self._responders[key]

        return unsubscribe

    def observe(self, method: str, observer: Observer) -> Unsubscribe:
        """See every admitted ``method`` request; observers never answer."""
        key = method.upper()
        hook = self._observers.get(key)
        if hook is None:
            hook = self._observers[key] = Hook(f"{key} observer")
        return hook.subscribe(observer)

    def responder(self, method: str) -> Responder | None:
        return self._responders.get(method) or self._defaults.get(method)

    def notify(self, incoming: Incoming) -> None:
        hook = self._observers.get(incoming.request.method)
        if hook is not None:
            hook.emit(incoming)

    def dispatch(self, incoming: Incoming) -> bool:
        """Observers, then the responder; False (nothing sent) when no responder takes the method."""
        responder = self.responder(incoming.request.method)
        if responder is None:
            return False
        self.notify(incoming)
        responder(incoming)
        return True

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(self._defaults) | frozenset(self._responders)
