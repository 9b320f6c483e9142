"""Digest challenges for non-trunk peers (RFC 3261 §22, RFC 8760): 401 with SHA-256 and MD5, stateless nonces."""

from __future__ import annotations

import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from . import digest
from .message import SipRequest


@dataclass
class DigestGuard:
    """Asks INVITEs from sources outside ``trusted`` (trunks) for credentials of a configured user."""

    realm: str
    users: dict[str, str]  # username -> password
    trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    clock: Callable[[], float] = time.time
    max_age_s: float = 300.0

    @classmethod
    def build(cls, realm: str, users: dict[str, str], trusted: Iterable[str]) -> "DigestGuard":
        return cls(realm, users, [ipaddress.ip_network(n, strict=False) for n in trusted])

    def is_trusted(self, source: str) -> bool:
        try:
            ip = ipaddress.ip_address(source)
        except ValueError:
            return False
        return any(ip.version == n.version and ip in n for n in self.trusted)

    def challenges(self, stale: bool = False) -> list[tuple[str, str]]:
        now = self.clock()
        return [("WWW-Authenticate", digest.make_challenge(self.realm, algorithm, nonce_secret=self.secret,
                                                           now=now, stale=stale))
                for algorithm in ("SHA-256", "MD5")]

    def check(self, request: SipRequest, source: str) -> tuple[bool, list[tuple[str, str]], str]:
        """(admitted, headers for a 401, reason). Trusted sources and valid credentials are admitted."""
        if self.is_trusted(source):
            return True, [], "trusted source"
        reasons = []
        for value in request.headers.get_all("Authorization"):
            try:
                result = digest.verify_authorization(value, request.method, self.users.get, self.realm, self.secret,
                                                     self.clock(), self.max_age_s, request_uri=request.uri)
            except digest.DigestError as exc:
                reasons.append(str(exc))
                continue
            if result.ok:
                return True, [], f"authenticated as {result.username}"
            if result.stale:
                return False, self.challenges(stale=True), "stale nonce"
            reasons.append(result.reason)
        return False, self.challenges(), "; ".join(reasons) or "no credentials"
