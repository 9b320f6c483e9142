"""SIP message model, parser and serialiser (RFC 3261 §7, §19, §20, §25).

The parser is strict where RFC 3261 is strict (start line, version, Content-Length, scalar ranges, URI and
parameter syntax, control characters) and tolerant where RFC 4475 shows real traffic varies (case, compact forms,
folding, LWS around separators, bytes that are not UTF-8). Errors raise :class:`SipParseError`, carrying whatever
headers could be read so a 4xx can still be formed. Every parsing step is linear in the input size (no regular
expression can backtrack over a long header), and callers bound the work with ``max_size`` / ``max_headers``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Iterator

SIP_VERSION = "SIP/2.0"
MAX_SCALAR = 2**32 - 1
MAGIC_COOKIE = "z9hG4bK"
DEFAULT_MAX_SIZE = 65535
DEFAULT_MAX_HEADERS = 256

COMPACT_FORMS = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact", "k": "Supported",
    "l": "Content-Length", "m": "Contact", "n": "Identity-Info", "o": "Event", "r": "Refer-To",
    "s": "Subject", "t": "To", "u": "Allow-Events", "v": "Via", "x": "Session-Expires", "y": "Identity",
}

_CANONICAL = {name.lower(): name for name in (
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Authentication-Info",
    "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition", "Content-Encoding",
    "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info", "Expires", "From",
    "In-Reply-To", "Max-Forwards", "Min-Expires", "MIME-Version", "Organization", "Priority",
    "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Record-Route", "Reply-To", "Require",
    "Retry-After", "Route", "Server", "Subject", "Supported", "Timestamp", "To", "Unsupported", "User-Agent",
    "Via", "Warning", "WWW-Authenticate", "Event", "Refer-To", "Referred-By", "Allow-Events",
    "Subscription-State", "Session-Expires", "Min-SE", "RSeq", "RAck", "User-to-User", "P-Asserted-Identity",
    "Privacy", "Diversion", "Reason", "Replaces",
)}

# Headers whose value may be a comma-separated list (RFC 3261 §7.3.1). Others are never split.
LIST_HEADERS = frozenset({
    "Via", "Contact", "Route", "Record-Route", "Allow", "Supported", "Require", "Proxy-Require", "Unsupported",
    "Accept", "Accept-Encoding", "Accept-Language", "Content-Encoding", "Content-Language", "Allow-Events",
    "In-Reply-To", "Warning", "Alert-Info", "Call-Info", "Error-Info", "Reply-To",
})

# Headers that may appear at most once (RFC 4475 §3.3.8).
SINGLE_HEADERS = ("Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Length", "Content-Type", "Expires")

# Headers a response copies from its request (RFC 3261 §8.2.6.2); without them no response can be formed.
RESPONSE_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")

_TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
_TOKEN_RE = re.compile(rf"[{_TOKEN_CHARS}]+\Z")
_GEN_VALUE_RE = re.compile(rf"[{_TOKEN_CHARS}:\[\]]+\Z")  # token / host (RFC 3261 gen-value)
_DIGITS_RE = re.compile(r"[0-9]+\Z")


class SipParseError(ValueError):
    """A message could not be parsed.

    ``status`` is the response to send: 400, 505 or 513 for a request whose Via, From, To, Call-ID and CSeq
    were readable (so RFC 3261 §8.2.6 lets a response be formed); None means drop silently (responses, ACKs,
    garbage, requests lacking those headers). ``headers`` holds whatever header fields were read.
    """

    def __init__(self, reason: str, status: int | None = 400, headers: "Headers | None" = None,
                 is_request: bool = True, method: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers = headers
        self.is_request = is_request
        self.method = method


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _scalar(text: str, what: str, limit: int = MAX_SCALAR) -> int:
    """Parse ASCII digits into an int no larger than ``limit`` (never calls int() on a huge string)."""
    if not _DIGITS_RE.match(text):
        raise SipParseError(f"{what} is not a number: {_clip(text)!r}")
    stripped = text.lstrip("0") or "0"
    if len(stripped) > len(str(limit)) or int(stripped) > limit:
        raise SipParseError(f"{what} out of range: {_clip(text)!r}")
    return int(stripped)


@lru_cache(maxsize=4096)
def canonical_name(name: str) -> str:
    """Return the canonical spelling of a header name, expanding compact forms."""
    lower = name.lower()
    if lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    if lower in _CANONICAL:
        return _CANONICAL[lower]
    return "-".join(part[:1].upper() + part[1:] for part in lower.split("-"))


def _split_raw(value: str) -> list[str]:
    """Split on commas outside quoted strings and <...>; elements are stripped, empty ones kept."""
    if "," not in value:
        return [value.strip(" \t")]
    if '"' not in value and "<" not in value:
        return [p.strip(" \t") for p in value.split(",")]
    parts: list[str] = []
    in_angle = in_quote = escaped = False
    start = 0
    for i, ch in enumerate(value):
        if in_quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == "," and not in_angle:
            parts.append(value[start:i].strip(" \t"))
            start = i + 1
    parts.append(value[start:].strip(" \t"))
    return parts


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, respecting quoted strings and <...> URIs; drops empty elements."""
    return [p for p in _split_raw(value) if p]


def _split_list_strict(value: str, name: str) -> list[str]:
    parts = _split_raw(value)
    if not all(parts):
        raise SipParseError(f"empty element in {name} list {_clip(value)!r}")
    return parts


def _check_field(name: str, value: str) -> None:
    if not _TOKEN_RE.match(name):
        raise ValueError(f"header name {name!r} is not a token")
    if "\r" in value or "\n" in value:
        raise ValueError(f"header {name} value contains CR or LF: {_clip(value)!r}")


class Headers:
    """Ordered, case-insensitive multi-map of SIP headers with canonical names.

    ``add``/``set`` refuse names that are not tokens and values containing CR or LF (header injection).
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        for k, v in items:
            self.add(k, v)

    def add(self, name: str, value: str) -> None:
        _check_field(name, value)
        self._items.append((canonical_name(name), value))

    def prepend(self, name: str, value: str) -> None:
        """Put a header before all others (a proxy or UA adding its topmost Via)."""
        _check_field(name, value)
        self._items.insert(0, (canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every occurrence of ``name`` by one header with ``value`` (kept at the first position)."""
        _check_field(name, value)
        cname = canonical_name(name)
        for i, (k, _) in enumerate(self._items):
            if k == cname:
                self._items[i] = (cname, value)
                self._items = [kv for j, kv in enumerate(self._items) if j <= i or kv[0] != cname]
                return
        self._items.append((cname, value))

    def remove(self, name: str) -> None:
        cname = canonical_name(name)
        self._items = [kv for kv in self._items if kv[0] != cname]

    def get(self, name: str, default: str | None = None) -> str | None:
        cname = canonical_name(name)
        for k, v in self._items:
            if k == cname:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every header line's value for ``name`` (not split on commas)."""
        cname = canonical_name(name)
        return [v for k, v in self._items if k == cname]

    def values(self, name: str) -> list[str]:
        """All values of ``name``, comma lists split for headers that allow lists."""
        cname = canonical_name(name)
        raw = self.get_all(cname)
        if cname not in LIST_HEADERS:
            return raw
        out: list[str] = []
        for v in raw:
            out.extend(split_list(v))
        return out

    def count(self, name: str) -> int:
        return len(self.get_all(name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    __hash__ = None  # type: ignore[assignment]  # unhashable (mutable): typeshed types object.__hash__ as a method

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def copy(self) -> "Headers":
        h = Headers()
        h._items = list(self._items)
        return h


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


@dataclass
class SipRequest(SipMessage):
    method: str = ""
    uri: str = ""

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


# --------------------------------------------------------------------------------------------- value parsers


@dataclass
class SipUri:
    """A sip:/sips: URI (other schemes keep ``opaque``). ``user``/``params`` stay %-escaped as received."""

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str | None = None
    opaque: str | None = None

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        out = f"{self.scheme}:"
        if self.user is not None:
            out += self.user
            if self.password is not None:
                out += ":" + self.password
            out += "@"
        out += f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        if self.port is not None:
            out += f":{self.port}"
        for k, v in self.params.items():
            out += f";{k}" if v is None else f";{k}={v}"
        if self.headers is not None:
            out += "?" + self.headers
        return out

    @property
    def is_sip(self) -> bool:
        return self.scheme in ("sip", "sips")


_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):")
_URI_FORBIDDEN_RE = re.compile(r'[\x00-\x20\x7f<>"]')
_ESCAPED = r"%[0-9A-Fa-f]{2}"
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
_USER_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,;?/]|{_ESCAPED})+\Z")
_PASSWORD_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,]|{_ESCAPED})*\Z")
_URI_PARAM_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/:&+$]|{_ESCAPED})+\Z")
_URI_HEADER_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESCAPED})*\Z")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9\-._]+\Z")
# The common shape (no escapes, no URI headers, hostname or IPv4 host) in one match; anything else takes the
# general path below. Character classes are disjoint from their delimiters, so matching is linear.
_PLAIN_SIP_URI_RE = re.compile(
    rf"(sips?):(?:([{_UNRESERVED}&=+$,;?/]+)(?::([{_UNRESERVED}&=+$,]*))?@)?([A-Za-z0-9\-._]+)"
    r"(?::([0-9]{1,5}))?((?:;[" + _UNRESERVED + r"\[\]/:&+$=]*)*)\Z")


def parse_uri(text: str) -> SipUri:
    """Parse a URI; sip/sips are decomposed and checked against RFC 3261 §25.1, other schemes stay opaque.

    The userinfo ends at the first '@' (user parts may contain '?', ';' and ',' — RFC 4475 §3.1.1.2).
    Raises SipParseError.
    """
    text = text.strip(" \t")
    if "%" not in text:
        fast = _PLAIN_SIP_URI_RE.match(text)
        if fast:
            return _plain_sip_uri(text, *fast.groups())
    m = _SCHEME_RE.match(text)
    if not m or _URI_FORBIDDEN_RE.search(text):
        raise SipParseError(f"malformed URI {_clip(text)!r}")
    scheme, rest = m.group(1).lower(), text[m.end():]
    if scheme not in ("sip", "sips"):
        if not rest:
            raise SipParseError(f"empty {scheme}: URI")
        return SipUri(scheme=scheme, opaque=rest)
    user = password = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1:]
        user, colon, pw = userinfo.partition(":")
        if not _USER_RE.match(user):
            raise SipParseError(f"malformed user part in URI {_clip(text)!r}")
        if colon:
            if not _PASSWORD_RE.match(pw):
                raise SipParseError(f"malformed password in URI {_clip(text)!r}")
            password = pw
    headers = None
    q = rest.find("?")
    if q >= 0:
        rest, headers = rest[:q], rest[q + 1:]
        for hdr in headers.split("&"):
            hname, eq, hvalue = hdr.partition("=")
            if not eq or not hname or not _URI_HEADER_RE.match(hname) or not _URI_HEADER_RE.match(hvalue):
                raise SipParseError(f"malformed URI header {_clip(hdr)!r}")
    hostport, semi, paramstr = rest.partition(";")
    host, port = _split_hostport(hostport)
    params: dict[str, str | None] = {}
    if semi:
        for p in paramstr.split(";"):
            k, eq, v = p.partition("=")
            if not _URI_PARAM_RE.match(k) or (eq and not _URI_PARAM_RE.match(v)):
                raise SipParseError(f"malformed URI parameter {_clip(p)!r}")
            k = k.lower()
            if k in params:
                raise SipParseError(f"duplicate URI parameter {k!r}")
            params[k] = v if eq else None
    return SipUri(scheme=scheme, user=user, password=password, host=host, port=port, params=params,
                  headers=headers)


def _plain_sip_uri(text: str, scheme: str, user: str | None, password: str | None, host: str, port: str | None,
                   paramstr: str) -> SipUri:
    params: dict[str, str | None] = {}
    if paramstr:
        for p in paramstr[1:].split(";"):
            k, eq, v = p.partition("=")
            if not k or (eq and (not v or "=" in v)):
                raise SipParseError(f"malformed URI parameter {_clip(p)!r}")
            k = k.lower()
            if k in params:
                raise SipParseError(f"duplicate URI parameter {k!r}")
            params[k] = v if eq else None
    port_num = None
    if port is not None:
        port_num = int(port)
        if not 0 < port_num < 65536:
            raise SipParseError(f"port out of range in URI {_clip(text)!r}")
    return SipUri(scheme=scheme, user=user, password=password, host=host.lower(), port=port_num, params=params)


def _split_hostport(hostport: str) -> tuple[str, int | None]:
    if not hostport:
        raise SipParseError("URI without host")
    port_text: str | None = None
    if hostport[0] == "[":
        end = hostport.find("]")
        if end < 0:
            raise SipParseError(f"malformed IPv6 reference {_clip(hostport)!r}")
        host = hostport[1:end]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise SipParseError(f"malformed IPv6 address {_clip(host)!r}") from None
        rest = hostport[end + 1:]
        if rest:
            if rest[0] != ":":
                raise SipParseError(f"malformed host {_clip(hostport)!r}")
            port_text = rest[1:]
    else:
        host, colon, port_text_ = hostport.partition(":")
        if not _HOSTNAME_RE.match(host):
            raise SipParseError(f"malformed host {_clip(host)!r}")
        port_text = port_text_ if colon else None
    port = None
    if port_text is not None:
        port = _scalar(port_text, "port", 65535)
        if port == 0:
            raise SipParseError("port 0")
    return host.lower(), port


_PARAM_RE = re.compile(r'[ \t]*;[ \t]*([^ \t;=,"]*)[ \t]*(?:=[ \t]*("(?:[^"\\]|\\[\s\S])*"|[^ \t;",]*))?[ \t]*')


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;a=b;c`` header parameters (RFC 3261 generic-param; LWS tolerant, quoted values kept quoted).

    Raises SipParseError for empty or duplicate parameters, non-token names and values that are neither
    token, host nor quoted-string.
    """
    text = text.strip(" \t")
    params: dict[str, str | None] = {}
    if not text:
        return params
    if text[0] != ";":
        text = ";" + text
    pos, end = 0, len(text)
    while pos < end:
        m = _PARAM_RE.match(text, pos)
        if not m:
            raise SipParseError(f"malformed parameters {_clip(text[pos:])!r}")
        name, value = m.group(1), m.group(2)
        if value == "" and text[m.end():m.end() + 1] == '"':
            raise SipParseError(f"unterminated quoted string in parameter {_clip(name)!r}")
        if not _TOKEN_RE.match(name):
            raise SipParseError(f"bad parameter name {_clip(name)!r}")
        if value is not None and not (value[:1] == '"' or _GEN_VALUE_RE.match(value)):
            raise SipParseError(f"bad value for parameter {name!r}: {_clip(value)!r}")
        name = name.lower()
        if name in params:
            raise SipParseError(f"duplicate parameter {name!r}")
        params[name] = value
        pos = m.end()
    return params


@dataclass
class NameAddr:
    """From/To/Contact/Refer-To style value: optional display name, URI, header parameters.

    ``display`` is the display name as written (quoted-pairs stay escaped, surrounding quotes removed).
    """

    uri: SipUri
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        out = f'"{self.display}" ' if self.display else ""
        out += f"<{self.uri}>"
        for k, v in self.params.items():
            out += f";{k}" if v is None else f";{k}={v}"
        return out


_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\[\s\S])*)"')
_DISPLAY_TOKENS_RE = re.compile(rf"[{_TOKEN_CHARS} \t]*\Z")


def parse_name_addr(text: str) -> NameAddr:
    """Parse name-addr / addr-spec with parameters (RFC 3261 §20.10, §25.1). Raises SipParseError."""
    text = text.strip(" \t")
    if not text:
        raise SipParseError("empty address")
    display: str | None = None
    if text[0] == '"':
        m = _QUOTED_RE.match(text)
        if not m:
            raise SipParseError("unterminated quoted display name")
        display = m.group(1)
        rest = text[m.end():].lstrip(" \t")
        if rest[:1] != "<":
            raise SipParseError("display name not followed by <URI>")
        lt = 0
    else:
        rest = text
        lt = rest.find("<")
        if lt >= 0:
            token_part = rest[:lt].strip(" \t")
            if not _DISPLAY_TOKENS_RE.match(token_part):
                raise SipParseError(f"non-token characters in display name {_clip(token_part)!r}")
            display = token_part or None
    if lt >= 0:
        gt = rest.find(">", lt)
        if gt < 0:
            raise SipParseError("missing '>' in address")
        inner = rest[lt + 1:gt]
        if inner != inner.strip(" \t"):
            raise SipParseError(f"spaces within addr-spec {_clip(inner)!r}")
        uri = parse_uri(inner)
        after = rest[gt + 1:].lstrip(" \t")
        if after and after[0] != ";":
            raise SipParseError(f"garbage after '>' in address: {_clip(after)!r}")
        return NameAddr(uri=uri, display=display, params=parse_params(after) if after else {})
    # addr-spec: URI parameters cannot be told from header parameters; RFC 3261 §20.10 says they are header params.
    uri_text, _, paramstr = rest.partition(";")
    uri_text = uri_text.rstrip(" \t")
    if " " in uri_text or "\t" in uri_text:
        raise SipParseError(f"spaces within addr-spec {_clip(uri_text)!r}")
    if "?" in uri_text or "," in uri_text:
        raise SipParseError("addr-spec containing ',' or '?' must be enclosed in <>")
    return NameAddr(uri=parse_uri(uri_text), params=parse_params(paramstr) if paramstr else {})


@dataclass
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str | None]

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        out = f"SIP/2.0/{self.transport} {host}"
        if self.port is not None:
            out += f":{self.port}"
        for k, v in self.params.items():
            out += f";{k}" if v is None else f";{k}={v}"
        return out


_VIA_PROTOCOL_RE = re.compile(rf"[ \t]*SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*([{_TOKEN_CHARS}]+)[ \t]+", re.I)
_SENT_BY_COLON_RE = re.compile(r"[ \t]*:[ \t]*")


def parse_via(text: str) -> Via:
    """Parse one Via value (already split from a list), RFC 3261 §20.42 and RFC 3581 rport.

    A branch that is only the magic cookie is rejected (RFC 4475 §3.2.1: such a branch would match every
    other broken request to the same transaction). Raises SipParseError.
    """
    m = _VIA_PROTOCOL_RE.match(text)
    if not m:
        raise SipParseError(f"malformed Via {_clip(text.strip())!r}")
    rest = text[m.end():]
    semi = rest.find(";")
    sent_by, params_text = (rest, "") if semi < 0 else (rest[:semi], rest[semi:])
    sent_by = sent_by.strip(" \t")
    if " " in sent_by or "\t" in sent_by:
        sent_by = _SENT_BY_COLON_RE.sub(":", sent_by)
        if " " in sent_by or "\t" in sent_by:
            raise SipParseError(f"malformed Via sent-by {_clip(sent_by)!r}")
    host, port = _split_hostport(sent_by)
    params = parse_params(params_text) if params_text else {}
    if params:
        _check_via_params(params)
    return Via(transport=m.group(1).upper(), host=host, port=port, params=params)


def _check_via_params(params: dict[str, str | None]) -> None:
    branch = params.get("branch", "")
    if "branch" in params and (branch is None or branch == MAGIC_COOKIE or not _TOKEN_RE.match(branch)):
        raise SipParseError(f"bad Via branch {branch!r}")
    if "ttl" in params:
        _scalar(params["ttl"] or "", "Via ttl", 255)
    if params.get("rport") is not None:
        _scalar(params["rport"] or "", "Via rport", 65535)
    if "received" in params:
        try:
            ipaddress.ip_address((params["received"] or "").strip("[]"))
        except ValueError:
            raise SipParseError(f"Via received is not an IP address: {params['received']!r}") from None
    if "maddr" in params:
        _split_hostport(params["maddr"] or "")


def parse_cseq(text: str) -> tuple[int, str]:
    parts = text.split()
    if len(parts) != 2:
        raise SipParseError(f"malformed CSeq {_clip(text)!r}")
    num = _scalar(parts[0], "CSeq number")
    if not _TOKEN_RE.match(parts[1]):
        raise SipParseError("CSeq method is not a token")
    return num, parts[1]


_MEDIA_TYPE_RE = re.compile(rf"([{_TOKEN_CHARS}]+)[ \t]*/[ \t]*([{_TOKEN_CHARS}]+)[ \t]*")


def parse_media_type(text: str) -> tuple[str, dict[str, str | None]]:
    """Parse a Content-Type / Accept element: ('type/subtype' lower-cased, parameters). Raises SipParseError."""
    m = _MEDIA_TYPE_RE.match(text.strip(" \t"))
    if not m:
        raise SipParseError(f"malformed media type {_clip(text)!r}")
    rest = text.strip(" \t")[m.end():]
    if rest and rest[0] != ";":
        raise SipParseError(f"malformed media type {_clip(text)!r}")
    return f"{m.group(1)}/{m.group(2)}".lower(), parse_params(rest) if rest else {}


def unquote(value: str) -> str:
    """Remove the quotes and quoted-pair escapes of a quoted-string; other values are returned unchanged."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r"\\([\s\S])", r"\1", value[1:-1])
    return value


def split_multipart(content_type: str, body: bytes) -> list[tuple[Headers, bytes]]:
    """Split a multipart/* body (RFC 2046 §5.1) into (part headers, part body). Raises SipParseError."""
    _, params = parse_media_type(content_type)
    boundary = unquote(params.get("boundary") or "")
    if not boundary or len(boundary) > 70:
        raise SipParseError("multipart body without a valid boundary parameter")
    delimiter = b"--" + boundary.encode("utf-8", "surrogateescape")
    pos = 0 if body.startswith(delimiter) else body.find(b"\n" + delimiter)
    if pos < 0:
        raise SipParseError("multipart boundary not found in body")
    pos = body.index(delimiter, pos)
    parts: list[tuple[Headers, bytes]] = []
    while True:
        pos += len(delimiter)
        if body[pos:pos + 2] == b"--":
            return parts
        eol = body.find(b"\n", pos)
        if eol < 0:
            raise SipParseError("multipart body ends inside a delimiter line")
        start = eol + 1
        nxt = body.find(b"\n" + delimiter, start)
        if nxt < 0:
            raise SipParseError("multipart body has no closing delimiter")
        chunk = body[start:nxt - 1] if body[nxt - 1:nxt] == b"\r" else body[start:nxt]
        if chunk.startswith(b"\r\n") or chunk.startswith(b"\n"):
            head_b, part_body = b"", chunk[2 if chunk.startswith(b"\r\n") else 1:]
        else:
            head_b, part_body = split_head_body(chunk)
        prefix = b"\n" if b"\n" in head_b and b"\r\n" not in head_b else b"\r\n"
        _, fields, problem = _read_head(prefix + head_b)
        if problem:
            raise SipParseError(f"multipart part headers: {problem}")
        part_headers = Headers()
        part_headers._items = [(canonical_name(k), v) for k, v in fields]
        parts.append((part_headers, part_body))
        pos = nxt + 1


# --------------------------------------------------------------------------------------------- message parser

_REQUEST_LINE_RE = re.compile(rf"([{_TOKEN_CHARS}]+) ([^ \t]+) (SIP/[0-9]+\.[0-9]+)\Z")
_STATUS_LINE_RE = re.compile(r"(SIP/[0-9]+\.[0-9]+) ([0-9]{3})(?: (.*))?\Z", re.S)
_CALL_ID_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID_RE = re.compile(rf"{_CALL_ID_WORD}(?:@{_CALL_ID_WORD})?\Z")
_DATE_RE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                      r"[0-9]{4} [0-2][0-9]:[0-5][0-9]:[0-6][0-9] GMT\Z")


def split_head_body(data: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line (CRLFCRLF; bare LFLF tolerated)."""
    crlf = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n")
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return data[:lf], data[lf + 2:]
    if crlf >= 0:
        return data[:crlf], data[crlf + 4:]
    return data, b""


def is_keepalive(data: bytes) -> bool:
    """True for a CRLF keep-alive (RFC 5626 §3.5.1): nothing but CR and LF bytes."""
    return not data.strip(b"\r\n")


def _stray_ctl(line: str) -> bool:
    """True when ``line`` has a control character outside a quoted-pair (RFC 3261 §25.1 quoted-pair)."""
    in_quote = escaped = False
    for ch in line:
        if escaped:
            escaped = False
        elif in_quote and ch == "\\":
            escaped = True
        elif ch == '"':
            in_quote = not in_quote
        elif (ch < " " and ch != "\t") or ch == "\x7f":
            return True
    return False


_CTL_BYTES = bytes(i for i in range(32) if i not in (9, 10, 13)) + b"\x7f"
_FIELD_RE = re.compile(rf"^([{_TOKEN_CHARS}]+)[ \t]*:[ \t]*([^\r\n]*)", re.M)


def _read_head(head_b: bytes) -> tuple[str, list[tuple[str, str]], str | None]:
    """Split the header section into the start line and unfolded (name, value) fields.

    Bytes that are not UTF-8 are kept as surrogate escapes (re-encoded on serialise). Never raises: the first
    syntax problem is returned so the headers can still be used to form a response.
    """
    head = head_b.decode("utf-8", "surrogateescape")
    problem: str | None = None
    n_crlf = head_b.count(b"\r\n")
    lines = head.split("\r\n") if n_crlf else head.split("\n")
    if n_crlf:
        if head_b.count(b"\r") != n_crlf or head_b.count(b"\n") != n_crlf:
            problem = "bare CR or LF in header section"
    elif b"\r" in head_b:
        problem = "bare CR in header section"
    if len(head_b.translate(None, _CTL_BYTES)) != len(head_b) and any(_stray_ctl(line) for line in lines):
        problem = problem or "control character in header section"
    if n_crlf and b"\n " not in head_b and b"\n\t" not in head_b:
        # Fast path: no folding; one anchored match per line, or fall through to the detailed loop.
        found = _FIELD_RE.findall(head, len(lines[0]) + 2)
        if len(found) == len(lines) - 1:
            return lines[0], [(n, v.rstrip(" \t")) for n, v in found], problem
    fields: list[tuple[str, str]] = []
    name: str | None = None
    parts: list[str] = []
    for line in lines[1:]:
        if not line:
            problem = problem or "empty line inside header section"
            continue
        if line[0] == " " or line[0] == "\t":
            if name is None:
                problem = problem or "continuation line without a header"
            else:
                parts.append(line.strip(" \t"))
            continue
        if name is not None:
            fields.append((name, parts[0] if len(parts) == 1 else " ".join(p for p in parts if p)))
        raw_name, colon, value = line.partition(":")
        raw_name = raw_name.rstrip(" \t")
        if not colon or not _TOKEN_RE.match(raw_name):
            problem = problem or f"malformed header line {_clip(line, 60)!r}"
            name = None
            continue
        name, parts = raw_name, [value.strip(" \t")]
    if name is not None:
        fields.append((name, parts[0] if len(parts) == 1 else " ".join(p for p in parts if p)))
    return lines[0], fields, problem


def _can_respond(headers: Headers) -> bool:
    """Whether a response can be routed (a Via is present) and the Via, From, To, Call-ID and CSeq present are
    safe to echo (no stray CR/LF). A request lacking From, To, Call-ID or CSeq is still answered (400)."""
    via = False
    for k, v in headers._items:
        if k in RESPONSE_HEADERS:
            if "\r" in v or "\n" in v:
                return False
            via = via or k == "Via"
    return via  # the response goes back to the source address (rport style), as for a bad Via


def parse_message(data: bytes, *, max_headers: int = DEFAULT_MAX_HEADERS, max_size: int = DEFAULT_MAX_SIZE,
                  stream: bool = False) -> SipRequest | SipResponse:
    """Parse one SIP message from a datagram (or a framed stream chunk when ``stream``).

    Without Content-Length on a datagram the body is the rest of the datagram; extra octets beyond
    Content-Length are ignored (RFC 3261 §18.3). Raises SipParseError whose ``status`` is 400/505/513 when a
    response can be formed, None when the message must be dropped (responses, ACKs, garbage, keep-alives).
    ``max_size`` bounds the whole message in bytes (oversize: 513), ``max_headers`` the header field count.
    """
    if len(data) > max_size:
        raise _limit_error(bytes(data), f"message of {len(data)} bytes exceeds the {max_size}-byte limit", 513)
    data = bytes(data).lstrip(b"\r\n")
    if not data:
        raise SipParseError("empty datagram (keep-alive)", status=None)
    head_b, body = split_head_body(data)
    start, fields, problem = _read_head(head_b)
    headers = Headers()
    headers._items = [(canonical_name(k), v) for k, v in fields]

    if start.startswith("SIP/"):
        m = _STATUS_LINE_RE.match(start)
        if not m or m.group(1) != SIP_VERSION or not 100 <= int(m.group(2)) <= 699:
            raise SipParseError(f"malformed Status-Line {_clip(start)!r}", status=None, headers=headers,
                                is_request=False)
        msg: SipRequest | SipResponse = SipResponse(headers=headers, status=int(m.group(2)),
                                                    reason=m.group(3) or "", version=m.group(1))
        method = None
    else:
        m = _REQUEST_LINE_RE.match(start)
        method = start.split(" ", 1)[0] if " " in start else None
        if not m:
            if "SIP/" not in start[:200]:
                raise SipParseError(f"not a SIP start line {_clip(start, 60)!r}", status=None)
            raise _request_error(f"malformed Request-Line {_clip(start)!r}", 400, headers, method)
        method, uri, version = m.groups()
        if version != SIP_VERSION:
            raise _request_error(f"unsupported version {version}", 505, headers, method)
        msg = SipRequest(headers=headers, method=method, uri=uri, version=version)

    def fail(reason: str, status: int = 400) -> SipParseError:
        if method is None:
            return SipParseError(reason, status=None, headers=headers, is_request=False)
        return _request_error(reason, status, headers, method)

    if problem:
        raise fail(problem)
    if len(fields) > max_headers:
        raise fail(f"too many header fields ({len(fields)} > {max_headers})")
    first: dict[str, str] = {}
    counts: dict[str, int] = {}
    for k, v in headers._items:
        if k in counts:
            counts[k] += 1
        else:
            counts[k] = 1
            first[k] = v
    # Content-Length framing (RFC 3261 §18.3, §20.14).
    if counts.get("Content-Length", 0) > 1:
        raise fail("multiple Content-Length header fields")
    cl_text = first.get("Content-Length")
    try:
        if cl_text is not None:
            length = _scalar(cl_text, "Content-Length")
            if length > len(body):
                raise SipParseError(f"Content-Length {length} larger than the {len(body)}-byte body")
            body = body[:length]
        elif stream:
            raise SipParseError("Content-Length required on stream transports")
        msg.body = body
        _check_headers(msg, first, counts)
    except SipParseError as exc:
        raise fail(exc.reason) from None
    return msg


def _request_error(reason: str, status: int, headers: Headers, method: str | None) -> SipParseError:
    respond = method != "ACK" and _can_respond(headers)
    return SipParseError(reason, status=status if respond else None, headers=headers, method=method)


def _limit_error(data: bytes, reason: str, status: int) -> SipParseError:
    """Error for a message over a limit: read just enough of the head to decide whether to answer."""
    head_b, _ = split_head_body(data.lstrip(b"\r\n"))
    start, fields, _ = _read_head(head_b)
    headers = Headers()
    headers._items = [(canonical_name(k), v) for k, v in fields]
    m = _REQUEST_LINE_RE.match(start)
    if not m or m.group(3) != SIP_VERSION:
        return SipParseError(reason, status=None, headers=headers, is_request=not start.startswith("SIP/"))
    return _request_error(reason, status, headers, m.group(1))


def _check_headers(msg: SipRequest | SipResponse, first: dict[str, str], counts: dict[str, int]) -> None:
    """Presence, multiplicity and syntax of the headers the stack relies on (RFC 3261 §8.1.1, §20; RFC 4475)."""
    for name in RESPONSE_HEADERS:
        if name not in counts:
            raise SipParseError(f"missing mandatory header {name}")
    for name in SINGLE_HEADERS:
        if counts.get(name, 0) > 1:
            raise SipParseError(f"multiple {name} header fields")
    h = msg.headers
    for line in h.get_all("Via"):
        for via in _split_list_strict(line, "Via"):
            parse_via(via)
    _, method = parse_cseq(first["CSeq"])
    if isinstance(msg, SipRequest):
        if method != msg.method:
            raise SipParseError(f"CSeq method {method} does not match Request-Line method {msg.method}")
        try:
            parse_uri(msg.uri)
        except SipParseError as exc:
            raise SipParseError(f"Request-URI: {exc.reason}") from None
    for name in ("From", "To"):
        try:
            parse_name_addr(first[name])
        except SipParseError as exc:
            raise SipParseError(f"{name}: {exc.reason}") from None
    if not _CALL_ID_RE.match(first["Call-ID"]):
        raise SipParseError(f"malformed Call-ID {_clip(first['Call-ID'])!r}")
    if "Max-Forwards" in first:
        _scalar(first["Max-Forwards"], "Max-Forwards", 255)
    if "Expires" in first:
        _scalar(first["Expires"], "Expires")
    if "Content-Type" in first:
        parse_media_type(first["Content-Type"])
    # Informational headers are checked in requests only: a response is never dropped over them.
    if "Date" in first and isinstance(msg, SipRequest) and not _DATE_RE.match(first["Date"]):
        raise SipParseError(f"Date is not an RFC 1123 GMT date: {_clip(first['Date'])!r}")
    if "Contact" in counts:
        _check_contacts(h.get_all("Contact"))
    for name in ("Route", "Record-Route"):
        if name in counts:
            for line in h.get_all(name):
                for value in _split_list_strict(line, name):
                    if "<" not in value:
                        raise SipParseError(f"{name} value must be a name-addr: {_clip(value)!r}")
                    try:
                        parse_name_addr(value)
                    except SipParseError as exc:
                        raise SipParseError(f"{name}: {exc.reason}") from None


def _check_contacts(lines: list[str]) -> None:
    values = [v for line in lines for v in _split_list_strict(line, "Contact")]
    if "*" in values:
        if len(values) > 1:
            raise SipParseError("Contact '*' combined with other values")
        return
    for value in values:
        try:
            na = parse_name_addr(value)
        except SipParseError as exc:
            raise SipParseError(f"Contact: {exc.reason}") from None
        if "expires" in na.params:
            _scalar(na.params["expires"] or "", "Contact expires")
