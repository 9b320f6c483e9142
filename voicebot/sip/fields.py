"""Values of particular SIP header fields: Via, CSeq, media types, quoted strings and multipart bodies."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .headers import MAGIC_COOKIE, SipParseError, _TOKEN_CHARS, _TOKEN_RE, _clip, _scalar
from .uri import _split_hostport, parse_params


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
