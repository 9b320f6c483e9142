"""Allowlist matching for SIP targets (transfers, REFER): on the parsed URI, never on the raw string.

A pattern is written like a SIP URI with shell-style wildcards in some parts:

    sip:*@agents.example.com          any user, that host, no port (or the scheme's default port)
    sip:+1555*@10.0.0.5:*             users starting +1555, that host, any port
    sip:agent@*.example.com:5060      one host label may vary: x.example.com, never x.y.example.com
    sip:*@gw.example.com;transport=udp   the target may carry transport=udp (and no other parameter)

Matching compares scheme, user, host and port separately. `*` in the host matches within one DNS label (so
`10.0.0.*` never matches `10.0.0.1.evil.example`). A target URI parameter (maddr, transport, user, ...) is
accepted only when the pattern names it with a matching value: `sip:*@127.0.0.1:*` does not allow
`sip:x@127.0.0.1:5099;maddr=127.0.0.9`, which the stack would route to 127.0.0.9. Targets with a password,
embedded headers (`?Replaces=`) or a user part holding URI delimiters are refused.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from voicebot.sip.headers import SipParseError
from voicebot.sip.uri import SipUri, parse_uri

__all__ = ["TargetPattern", "TargetPatternError", "parse_target", "target_allowed"]

_DEFAULT_PORTS = {"sip": 5060, "sips": 5061}
_PATTERN_RE = re.compile(
    r"(?P<scheme>sips?):(?:(?P<user>[^@;?\s]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._*?\[\]!]+)"
    r"(?::(?P<port>[0-9]{1,5}|\*))?(?P<params>(?:;[^;?\s]+)*)\Z"
)
_SAFE_USER_RE = re.compile(r"[A-Za-z0-9+\-_.!~*'()]{1,64}\Z")  # no ; ? , / % & = $ : a gateway might interpret


class TargetPatternError(ValueError):
    """A transfer target pattern that cannot be read as a SIP URI pattern."""


@dataclass(frozen=True)
class TargetPattern:
    """One allowlist entry, parsed (see the module docstring)."""

    scheme: str
    user: str | None
    host: str
    port: str | None  # digits, "*" or None (the scheme's default port)
    params: dict[str, str | None] = field(default_factory=dict)
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> TargetPattern:
        """Read a pattern; raises TargetPatternError naming the problem."""
        match = _PATTERN_RE.fullmatch(text.strip())
        if match is None:
            raise TargetPatternError(
                f"{text!r} is not a SIP URI or URI pattern (sip:user@host[:port][;param=value], wildcards * ? in user, "
                "host labels and port)")
        port = match["port"]
        if port is not None and port != "*" and not 1 <= int(port) <= 65535:
            raise TargetPatternError(f"{text!r} has port {port} outside 1..65535")
        params: dict[str, str | None] = {}
        for item in filter(None, (match["params"] or "").split(";")):
            name, eq, value = item.partition("=")
            params[name.lower()] = value.lower() if eq else None
        return cls(match["scheme"].lower(), match["user"], match["host"].lower(), port, params, text)

    def matches(self, uri: SipUri) -> bool:
        """Whether the parsed `uri` is allowed by this pattern."""
        if uri.scheme != self.scheme or uri.opaque is not None or uri.password is not None or uri.headers:
            return False
        if not self._user_matches(uri.user):
            return False
        if not _host_matches(uri.host, self.host):
            return False
        if self.port != "*":
            wanted = int(self.port) if self.port is not None else _DEFAULT_PORTS[self.scheme]
            if (uri.port if uri.port is not None else _DEFAULT_PORTS[uri.scheme]) != wanted:
                return False
        for name, value in uri.params.items():
            if name not in self.params:
                return False
            allowed = self.params[name]
            if (allowed is None) != (value is None):
                return False
            if allowed is not None and value is not None and not fnmatch.fnmatchcase(value.lower(), allowed):
                return False
        return True

    def _user_matches(self, user: str | None) -> bool:
        if self.user is None:
            return user is None
        if user is None or not _SAFE_USER_RE.match(user):
            return False
        return fnmatch.fnmatchcase(user, self.user)


def _host_matches(host: str, pattern: str) -> bool:
    host = host.lower().strip("[]")
    if pattern.startswith("["):
        try:
            return ipaddress.ip_address(host) == ipaddress.ip_address(pattern.strip("[]"))
        except ValueError:
            return False
    labels, wanted = host.split("."), pattern.split(".")
    return len(labels) == len(wanted) and all(
        label and fnmatch.fnmatchcase(label, glob) for label, glob in zip(labels, wanted)
    )


def parse_target(target: str | SipUri) -> SipUri | None:
    """The parsed SIP URI of `target` (a URI or `<URI>`), or None when it is not one."""
    if isinstance(target, SipUri):
        return target
    text = target.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    try:
        uri = parse_uri(text)
    except SipParseError:
        return None
    return uri if uri.is_sip else None


def target_allowed(target: str | SipUri, patterns: Iterable[TargetPattern | str]) -> bool:
    """Whether `target` (URI text or parsed) matches one of `patterns`; non-SIP or malformed targets never do."""
    uri = parse_target(target)
    if uri is None:
        return False
    for pattern in patterns:
        parsed = pattern if isinstance(pattern, TargetPattern) else TargetPattern.parse(pattern)
        if parsed.matches(uri):
            return True
    return False
