"""REGISTER to a trunk's registrar with digest auth and timely refresh (RFC 3261 §10)."""

from __future__ import annotations

import asyncio
import logging
import time

from .dialog import new_call_id, new_tag
from .message import SipRequest, SipResponse
from .uri import parse_name_addr, parse_uri
from .transaction import TransactionTimeout
from .ua import Credentials, UserAgent

log = logging.getLogger("voicebot.sip.registration")

MIN_RETRY_S = 5.0
MAX_RETRY_S = 300.0


def refresh_delay(granted_expires: int) -> float:
    """Refresh well before expiry: at 85 % of the lifetime, but never later than 30 s before it ends."""
    return max(1.0, min(granted_expires * 0.85, granted_expires - 30.0 if granted_expires > 60 else granted_expires * 0.5))


def granted_expires(response: SipResponse, requested: int, contact_uri: str) -> int:
    """The lifetime the registrar granted: our Contact's expires param, else Expires, else what we asked."""
    for value in response.headers.values("Contact"):
        try:
            na = parse_name_addr(value)
        except Exception:  # noqa: BLE001 - a malformed foreign Contact is skipped
            continue
        if str(na.uri).split(";")[0] == contact_uri.split(";")[0] and (na.params.get("expires") or "").isdigit():
            return int(na.params["expires"] or requested)
    header = response.headers.get("Expires")
    if header and header.strip().isdigit():
        return int(header)
    return requested


class Registration:
    """Keeps one binding registered at a registrar; ``run()`` loops until cancelled."""

    def __init__(self, ua: UserAgent, registrar: str, username: str, password: str | None, *,
                 expires: int = 3600, name: str = "trunk") -> None:
        self.ua = ua
        self.registrar = registrar
        self.username = username
        self.credentials = Credentials(username, password) if password is not None else None
        self.expires = expires
        self.name = name
        reg_uri = parse_uri(registrar)
        self.aor = f"sip:{username}@{reg_uri.host}"
        self.request_uri = f"sip:{reg_uri.host}" + (f":{reg_uri.port}" if reg_uri.port else "")
        self.call_id = new_call_id(ua.advertised_host)
        self.tag = new_tag()
        self.cseq = 0
        self.registered = False
        self.last_status: int | None = None
        self.expires_at: float | None = None
        self.registered_event = asyncio.Event()

    def _build(self, expires: int) -> SipRequest:
        self.cseq += 1
        req = SipRequest(method="REGISTER", uri=self.request_uri)
        h = req.headers
        h.add("Max-Forwards", "70")
        h.add("From", f"<{self.aor}>;tag={self.tag}")
        h.add("To", f"<{self.aor}>")
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{self.cseq} REGISTER")
        h.add("Contact", f"<{self.ua.contact_uri}>;expires={expires}")
        h.add("Expires", str(expires))
        return req

    async def register_once(self, expires: int | None = None) -> SipResponse:
        """One REGISTER transaction (retried once with credentials on 401/407)."""
        lifetime = self.expires if expires is None else expires
        req = self._build(lifetime)
        target = await self.ua.resolve_target(SipRequest(method="REGISTER", uri=self.registrar))
        resp = await self.ua.send_request(req, target, credentials=self.credentials)
        self.cseq = req.cseq[0]
        self.last_status = resp.status
        if 200 <= resp.status < 300 and lifetime > 0:
            granted = granted_expires(resp, lifetime, self.ua.contact_uri)
            self.registered = True
            self.expires_at = time.time() + granted
            self.registered_event.set()
            log.info("registered", extra={"fields": {"trunk": self.name, "aor": self.aor, "expires": granted}})
        elif lifetime == 0:
            self.registered = False
        else:
            self.registered = False
            log.warning("registration refused", extra={"fields": {"trunk": self.name, "status": resp.status,
                                                                  "reason": resp.reason}})
        return resp

    async def run(self) -> None:
        """Register, refresh before expiry, back off exponentially on failure."""
        retry = MIN_RETRY_S
        while True:
            try:
                resp = await self.register_once()
            except (TransactionTimeout, OSError) as exc:
                log.warning("registration failed", extra={"fields": {"trunk": self.name, "error": str(exc)}})
                resp = None
            if resp is not None and 200 <= resp.status < 300:
                retry = MIN_RETRY_S
                granted = int((self.expires_at or time.time()) - time.time())
                await asyncio.sleep(refresh_delay(max(granted, 1)))
                continue
            if resp is not None and resp.status == 423:  # Interval Too Brief: take the registrar's minimum
                min_expires = resp.headers.get("Min-Expires")
                if min_expires and min_expires.strip().isdigit():
                    self.expires = int(min_expires)
                    continue
            await asyncio.sleep(retry)
            retry = min(retry * 2, MAX_RETRY_S)

    async def unregister(self) -> None:
        if self.registered:
            try:
                await self.register_once(expires=0)
            except TransactionTimeout:
                pass
