"""Registrar bindings (RFC 3261 §10.3): which Contact each registered user can be reached at, until when.

Pure logic, no I/O: the clock is passed in. One table per node (registrations are not shared between nodes).

    table = BindingTable()
    table.apply(RegisterUpdate("alice", [("sip:alice@192.0.2.7:5070", 300)], "cid", 1), ("192.0.2.7", 5070), now)
    table.contact("alice", now)   # -> "sip:alice@192.0.2.7:5070" (the most recently refreshed binding)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .headers import SipParseError
from .message import SipRequest
from .uri import parse_name_addr

DEFAULT_EXPIRES_S = 3600
MIN_EXPIRES_S = 60
MAX_EXPIRES_S = 3600
MAX_BINDINGS_PER_USER = 4


class RegisterError(ValueError):
    """A REGISTER the registrar refuses: SIP status, reason and extra response headers."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers or []


@dataclass(frozen=True)
class Binding:
    """One Contact of a registered user."""

    contact: str
    expires_at: float
    source: tuple[str, int]
    call_id: str
    cseq: int
    updated_at: float

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))


@dataclass(frozen=True)
class RegisterUpdate:
    """What one REGISTER asks for: ``contacts`` as (uri, expires seconds), ``wildcard`` = remove all (Contact: *),
    neither = a query of the current bindings."""

    user: str
    contacts: list[tuple[str, int]]
    call_id: str
    cseq: int
    wildcard: bool = False


def parse_register(req: SipRequest, *, default_expires: int = DEFAULT_EXPIRES_S, min_expires: int = MIN_EXPIRES_S,
                   max_expires: int = MAX_EXPIRES_S) -> RegisterUpdate:
    """Read a REGISTER's address-of-record user, Contacts and lifetimes; raises RegisterError (400, 423)."""
    try:
        to_uri = req.to.uri
        call_id, (cseq, _) = req.call_id, req.cseq
    except SipParseError as exc:
        raise RegisterError(400, f"Bad Request ({exc.reason})") from None
    if not to_uri.is_sip or not to_uri.user:
        raise RegisterError(400, "Bad Request (To must be a sip: address of record with a user part)")
    header = (req.headers.get("Expires") or "").strip()
    if header and not header.isdigit():
        raise RegisterError(400, f"Bad Request (Expires {header[:20]!r} is not a number of seconds)")
    expires_header = int(header) if header else None
    values = req.headers.values("Contact")
    if any(v.strip() == "*" for v in values):
        if len(values) != 1 or expires_header != 0:
            raise RegisterError(400, "Bad Request (Contact: * needs Expires: 0 and no other Contact)")
        return RegisterUpdate(to_uri.user, [], call_id, cseq, wildcard=True)
    contacts: list[tuple[str, int]] = []
    for value in values:
        try:
            na = parse_name_addr(value)
        except SipParseError as exc:
            raise RegisterError(400, f"Bad Request (Contact: {exc.reason})") from None
        if not na.uri.is_sip or not na.uri.host:
            raise RegisterError(400, "Bad Request (Contact must be a sip: URI)")
        param = na.params.get("expires")
        if param is not None and not param.isdigit():
            raise RegisterError(400, f"Bad Request (Contact expires={param[:20]!r} is not a number)")
        expires = int(param) if param is not None else expires_header if expires_header is not None \
            else default_expires
        if 0 < expires < min_expires:
            raise RegisterError(423, "Interval Too Brief", [("Min-Expires", str(min_expires))])
        contacts.append((str(na.uri), min(expires, max_expires)))
    return RegisterUpdate(to_uri.user, contacts, call_id, cseq)


@dataclass
class BindingTable:
    """Bindings per user, newest last; expired ones vanish on the next read or write."""

    max_per_user: int = MAX_BINDINGS_PER_USER
    _by_user: dict[str, list[Binding]] = field(default_factory=dict)

    def current(self, user: str, now: float) -> list[Binding]:
        live = [b for b in self._by_user.get(user, []) if b.expires_at > now]
        if live:
            self._by_user[user] = live
        else:
            self._by_user.pop(user, None)
        return list(live)

    def contact(self, user: str, now: float) -> str | None:
        """The Contact to ring: the most recently registered or refreshed live binding."""
        live = self.current(user, now)
        return max(live, key=lambda b: b.updated_at).contact if live else None

    def apply(self, update: RegisterUpdate, source: tuple[str, int], now: float) -> list[Binding]:
        """Add, refresh or remove bindings as ``update`` says; returns the user's live bindings afterwards.

        A request older than the stored one for the same Call-ID (lower or equal CSeq) raises RegisterError 500
        (§10.3 step 7) and changes nothing."""
        live = self.current(update.user, now)
        for binding in live:
            if binding.call_id == update.call_id and update.cseq <= binding.cseq:
                raise RegisterError(500, "Server Internal Error (REGISTER CSeq out of order)")
        if update.wildcard:
            self._by_user.pop(update.user, None)
            return []
        kept = {b.contact: b for b in live}
        for contact, expires in update.contacts:
            kept.pop(contact, None)
            if expires > 0:
                kept[contact] = Binding(contact, now + expires, source, update.call_id, update.cseq, now)
        if len(kept) > self.max_per_user:
            raise RegisterError(403, f"Forbidden (at most {self.max_per_user} registered contacts per user)")
        if kept:
            self._by_user[update.user] = list(kept.values())
        else:
            self._by_user.pop(update.user, None)
        return list(kept.values())

    def users(self, now: float) -> list[str]:
        return [user for user in list(self._by_user) if self.current(user, now)]
