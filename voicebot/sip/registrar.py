"""Registrar for agent phones: digest-authenticated REGISTER (RFC 3261 §10.3) into a per-node BindingTable.

The UserAgent hands each REGISTER that passed its source ACL and rate limit to ``Registrar.handle``, which returns
the response to send: 401 with a challenge (SHA-256 and MD5, stateless nonces as in challenge.py), 403 for an
unknown user, a wrong password or a user registering someone else's address, 200 with the live bindings.
Replays are refused: each nonce is bound to the client's source ip:port (signed into it), and its nonce count
must increase from one use to the next (a reused one gets a fresh stale=true challenge).
Password guessing is locked out (lockout.py): repeated failures ban the source or the user for a while, audited.
Bindings live in this process only: an agent registered at node A is rung by node A alone (other nodes fall back
to the agent's static sip_uri). Passwords are held as Secret and never logged.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable

from voicebot.compliance.secrets import Secret

from . import digest
from .bindings import Binding, BindingTable, RegisterError, parse_register
from .handlers import Incoming
from .lockout import AuthLockout, Ban
from .message import SipRequest
from .noncecount import NonceCounts

log = logging.getLogger("voicebot.sip.registrar")
audit_log = logging.getLogger("voicebot.audit")  # copied to the hash-chained audit file by the server

Addr = tuple[str, int]
Reply = tuple[int, str, list[tuple[str, str]]]


@dataclass(frozen=True)
class SipAccount:
    """An agent's phone login: digest user name (= address-of-record user) and password."""

    user: str
    agent_id: str
    password: Secret


@dataclass
class Registrar:
    realm: str
    accounts: dict[str, SipAccount]  # user -> account
    table: BindingTable = field(default_factory=BindingTable)
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    clock: Callable[[], float] = time.time
    nonce_max_age_s: float = 300.0
    nonce_counts: NonceCounts = field(default_factory=NonceCounts)
    lockout: AuthLockout = field(default_factory=AuthLockout)
    locked_refusals: int = 0
    _last_prune: float = 0.0

    def contact_for_agent(self, agent_id: str) -> str | None:
        """The registered Contact of ``agent_id``'s phone, or None when it is not registered here."""
        for account in self.accounts.values():
            if account.agent_id == agent_id:
                return self.table.contact(account.user, self.clock())
        return None

    def _challenge(self, source: Addr, stale: bool = False) -> Reply:
        now = self.clock()
        return 401, "Unauthorized", [
            ("WWW-Authenticate", digest.make_challenge(self.realm, algorithm, nonce_secret=self.secret, now=now,
                                                       stale=stale, bind=_bind(source)))
            for algorithm in ("SHA-256", "MD5")]

    def _refuse(self, source: Addr, user: str | None, reason: str, status: int = 403,
                phrase: str = "Forbidden") -> Reply:
        log.warning("REGISTER refused", extra={"fields": {"src": f"{source[0]}:{source[1]}", "user": user,
                                                          "status": status, "reason": reason}})
        return status, phrase, []

    def authenticate(self, req: SipRequest, source: Addr) -> SipAccount | Reply:
        """The account whose valid credentials ``req`` carries, or the reply (401/403) to send instead."""
        values = req.headers.get_all("Authorization")
        if not values:
            return self._challenge(source)
        try:
            params = digest.parse_credentials(values[0])
        except digest.DigestError as exc:
            return self._refuse(source, None, f"malformed credentials: {exc}", 400, "Bad Request")
        user = params.get("username", "")
        ban = self.lockout.locked(source[0], user, self.clock())
        if ban is not None:  # refused without a look at the password; the ban itself was logged and audited
            self.locked_refusals += 1
            return 403, "Forbidden (locked out after failed logins)", []
        account = self.accounts.get(user)
        if account is None:
            self._failed(source, None)
            return self._refuse(source, user or None, "unknown user")
        result = digest.verify_authorization(
            values[0], req.method, lambda name: account.password.reveal() if name == account.user else None,
            self.realm, self.secret, self.clock(), self.nonce_max_age_s, request_uri=req.uri, bind=_bind(source))
        if result.ok:
            if self._first_use(params):
                return account
            log.warning("REGISTER replay refused", extra={"fields": {"src": f"{source[0]}:{source[1]}",
                                                                     "user": user, "nc": params.get("nc")}})
            return self._challenge(source, stale=True)
        if result.stale:
            return self._challenge(source, stale=True)
        if not self._nonce_is_ours(params, source):
            # e.g. a nonce from before a restart, or one issued to another source: ask again, no verdict yet
            return self._challenge(source)
        self._failed(source, account)
        return self._refuse(source, user, result.reason)

    def _failed(self, source: Addr, account: SipAccount | None) -> None:
        """Count a failed login; log and audit any ban it starts."""
        now = self.clock()
        for ban in self.lockout.failed(source[0], account.user if account else None, now):
            self._audit_ban(ban, source, account, now)

    def _audit_ban(self, ban: Ban, source: Addr, account: SipAccount | None, now: float) -> None:
        fields = {"scope": ban.scope, "key": ban.key, "src": f"{source[0]}:{source[1]}",
                  "user": account.user if account else None, "failures": ban.failures,
                  "ban_s": round(ban.until - now)}
        log.warning("SIP login lockout", extra={"fields": fields})
        audit_log.info(json.dumps({"event": "sip.login_lockout", "role": "sip-peer", "token": None,
                                   "agent": account.agent_id if account and ban.scope == "user" else None,
                                   **fields}, sort_keys=True))

    def _first_use(self, params: dict[str, str]) -> bool:
        """Whether verified credentials use their nonce with a nonce count not seen before (no replay)."""
        now = self.clock()
        if now - self._last_prune > 60.0:
            self._last_prune = now
            self.nonce_counts.prune(now)
        nc = int(params["nc"], 16) if params.get("qop") and params.get("nc") else None
        return self.nonce_counts.accept(params["nonce"], nc, now + self.nonce_max_age_s, now)

    def _nonce_is_ours(self, params: dict[str, str], source: Addr) -> bool:
        algorithm = digest._canonical_algorithm(params.get("algorithm", "MD5"))  # noqa: SLF001
        return algorithm is not None and params.get("realm") == self.realm and digest._nonce_issued_at(  # noqa: SLF001
            params.get("nonce", ""), self.realm, algorithm, self.secret, _bind(source)) is not None

    def handle(self, req: SipRequest, source: Addr) -> Reply:
        """(status, reason, headers) answering one REGISTER."""
        try:
            update = parse_register(req)
        except RegisterError as exc:
            return self._refuse(source, None, exc.reason, exc.status, exc.reason)
        auth = self.authenticate(req, source)
        if not isinstance(auth, SipAccount):
            return auth
        if update.user != auth.user:
            return self._refuse(source, auth.user, f"may not register the address of {update.user!r}")
        now = self.clock()
        before = self.table.contact(auth.user, now)
        try:
            bindings = self.table.apply(update, source, now)
        except RegisterError as exc:
            return self._refuse(source, auth.user, exc.reason, exc.status, exc.reason)
        after = self.table.contact(auth.user, now)
        fields = {"agent": auth.agent_id, "user": auth.user, "src": f"{source[0]}:{source[1]}"}
        if after is None and before is not None:
            log.info("agent unregistered", extra={"fields": fields})
        elif after is not None and (update.contacts or update.wildcard):
            lifetime = max(b.remaining(now) for b in bindings)
            log.info("agent registered", extra={"fields": {**fields, "contact": after, "expires": lifetime}})
        return 200, "OK", _contact_headers(bindings, now)

    def respond(self, incoming: Incoming) -> None:
        """The REGISTER responder for the UA's handler table: ``ua.handle("REGISTER", registrar.respond)``."""
        status, reason, headers = self.handle(incoming.request, incoming.source)
        incoming.respond(status, reason, headers)


def _bind(source: Addr) -> str:
    """What a nonce is bound to: the client's source address and port."""
    return f"{source[0]}:{source[1]}"


def _contact_headers(bindings: list[Binding], now: float) -> list[tuple[str, str]]:
    headers = [("Contact", f"<{b.contact}>;expires={b.remaining(now)}") for b in bindings]
    return headers + [("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)))]
