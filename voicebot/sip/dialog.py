"""SIP dialogs (RFC 3261 §12): identifiers, route set, CSeq bookkeeping, in-dialog request construction."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from .uri import NameAddr, parse_name_addr
from .message import SipRequest, SipResponse

Addr = tuple[str, int]


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{host}"


def _strip_tag(value: str) -> str:
    na = parse_name_addr(value)
    na.params.pop("tag", None)
    return str(na)


def _contact_uri(message: SipRequest | SipResponse) -> str | None:
    contacts = message.headers.values("Contact")
    if not contacts:
        return None
    return str(parse_name_addr(contacts[0]).uri)


@dataclass
class Dialog:
    """One confirmed (or early) dialog, seen from our side."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # our name-addr without tag
    remote_uri: str  # peer's name-addr without tag
    remote_target: str  # peer's Contact URI
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 1
    remote_seq: int | None = None
    is_uas: bool = True
    peer_addr: Addr | None = None  # where in-dialog requests go (the signalling flow)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_incoming_invite(cls, invite: SipRequest, local_tag: str, peer_addr: Addr) -> "Dialog":
        """UAS side: built when we send a 2xx to ``invite`` (§12.1.1)."""
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=invite.from_.tag or "",
            local_uri=_strip_tag(invite.headers.get("To") or ""),
            remote_uri=_strip_tag(invite.headers.get("From") or ""),
            remote_target=_contact_uri(invite) or str(invite.from_.uri),
            route_set=list(invite.headers.values("Record-Route")),
            local_seq=secrets.randbelow(2**16) + 1,
            remote_seq=invite.cseq[0],
            is_uas=True,
            peer_addr=peer_addr,
        )

    @classmethod
    def from_2xx(cls, invite: SipRequest, response: SipResponse, peer_addr: Addr) -> "Dialog":
        """UAC side: built from the 2xx to our INVITE (§12.1.2)."""
        return cls(
            call_id=invite.call_id,
            local_tag=invite.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_uri=_strip_tag(invite.headers.get("From") or ""),
            remote_uri=_strip_tag(invite.headers.get("To") or ""),
            remote_target=_contact_uri(response) or invite.uri,
            route_set=list(reversed(response.headers.values("Record-Route"))),
            local_seq=invite.cseq[0],
            remote_seq=None,
            is_uas=False,
            peer_addr=peer_addr,
        )

    def accept_remote_cseq(self, request: SipRequest) -> bool:
        """Record the peer's CSeq; False when it is lower than the last one (→ 500, §12.2.2)."""
        num = request.cseq[0]
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and num < self.remote_seq:
            return False
        self.remote_seq = num
        return True

    def create_request(self, method: str, *, body: bytes = b"", content_type: str | None = None,
                       extra_headers: list[tuple[str, str]] | None = None, cseq: int | None = None) -> SipRequest:
        """Build an in-dialog request without Via (the UA adds Via and Contact when sending)."""
        if cseq is None:
            if method != "ACK":
                self.local_seq += 1
            cseq = self.local_seq
        req = SipRequest(method=method, uri=self.remote_target)
        h = req.headers
        for route in self.route_set:
            h.add("Route", route)
        h.add("Max-Forwards", "70")
        h.add("From", f"{self.local_uri};tag={self.local_tag}")
        h.add("To", f"{self.remote_uri};tag={self.remote_tag}" if self.remote_tag else self.remote_uri)
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{cseq} {method}")
        for name, value in extra_headers or []:
            h.add(name, value)
        if body:
            h.add("Content-Type", content_type or "application/sdp")
        req.body = body
        return req

    def matches(self, request: SipRequest) -> bool:
        return (request.call_id == self.call_id and request.to.tag == self.local_tag
                and (request.from_.tag or "") == self.remote_tag)


def remote_party(dialog: Dialog) -> NameAddr:
    return parse_name_addr(dialog.remote_uri)
