"""SIP header fields (RFC 3261 §7.3, §20): names, compact forms, list splitting, the ordered `Headers` map and
the parse error every SIP parsing step raises."""

from __future__ import annotations

import re
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
