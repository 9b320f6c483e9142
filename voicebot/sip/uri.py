"""SIP URIs, parameters and name-addr values (RFC 3261 §19.1, §25.1): parsed strictly, in linear time."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from .headers import SipParseError, _GEN_VALUE_RE, _TOKEN_CHARS, _TOKEN_RE, _clip, _scalar


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
