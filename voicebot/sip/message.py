"""SIP message model and serialiser (RFC 3261 §7); the parts live in headers.py (fields), uri.py (URIs,
name-addr), fields.py (Via, CSeq, media types, multipart) and parser.py (bytes -> message). This module is the
layer's public face: everything is importable from here."""

from __future__ import annotations

from dataclasses import dataclass, field

from .headers import Headers, SIP_VERSION, SipParseError, _DIGITS_RE
from .uri import NameAddr, parse_name_addr
from .fields import Via, parse_cseq, parse_via



@dataclass
class SipMessage:
    """Fields shared by requests and responses."""

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.headers.get("CSeq") or "")

    @property
    def top_via(self) -> "Via":
        vias = self.headers.values("Via")
        if not vias:
            raise SipParseError("missing Via")
        return parse_via(vias[0])

    @property
    def from_(self) -> "NameAddr":
        return parse_name_addr(self.headers.get("From") or "")

    @property
    def to(self) -> "NameAddr":
        return parse_name_addr(self.headers.get("To") or "")

    @property
    def content_type(self) -> str:
        """The media type in lower case without parameters ('' when absent)."""
        return "".join((self.headers.get("Content-Type") or "").split(";", 1)[0].split()).lower()

    def _serialize(self, start_line: str) -> bytes:
        """Header order and values are kept; Content-Length is set to the body length in its original place."""
        body = self.body
        lines = [start_line]
        length_written = False
        for k, v in self.headers._items:
            if k == "Content-Length":
                if length_written:
                    continue
                length_written = True
                text = v.strip()
                if not (_DIGITS_RE.match(text) and len(text) < 12 and int(text) == len(body)):
                    v = str(len(body))
            lines.append(f"{k}: {v}")
        if not length_written:
            lines.append(f"Content-Length: {len(body)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body


@dataclass(frozen=True)
class Arrival:
    """How a received request reached us, as the socket saw it (never inferred from its source address): the
    transport and, over TLS, the peer certificate's common name and every name it proves (none: no certificate)."""

    transport: str = "udp"
    peer_name: str | None = None
    peer_names: tuple[str, ...] = ()


@dataclass
class SipRequest(SipMessage):
    method: str = ""
    uri: str = ""
    arrival: Arrival | None = None  # set by the UA on requests it received; None on requests we build

    def serialize(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} {self.version}")

    @property
    def is_request(self) -> bool:
        return True


@dataclass
class SipResponse(SipMessage):
    status: int = 0
    reason: str = ""

    def serialize(self) -> bytes:
        return self._serialize(f"{self.version} {self.status} {self.reason}")

    @property
    def is_request(self) -> bool:
        return False

