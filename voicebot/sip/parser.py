"""SIP message parser: bytes to SipRequest / SipResponse (RFC 3261 §7, §19, §20, §25).

The parser is strict where RFC 3261 is strict (start line, version, Content-Length, scalar ranges, URI and
parameter syntax, control characters) and tolerant where RFC 4475 shows real traffic varies (case, compact forms,
folding, LWS around separators, bytes that are not UTF-8). Errors raise :class:`SipParseError`, carrying whatever
headers could be read so a 4xx can still be formed. Every parsing step is linear in the input size (no regular
expression can backtrack over a long header), and callers bound the work with ``max_size`` / ``max_headers``.
"""

from __future__ import annotations

import re

from .fields import parse_cseq, parse_media_type, parse_via, unquote
from .headers import (
    _TOKEN_CHARS,
    _TOKEN_RE,
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_SIZE,
    RESPONSE_HEADERS,
    SINGLE_HEADERS,
    SIP_VERSION,
    Headers,
    SipParseError,
    _clip,
    _scalar,
    _split_list_strict,
    canonical_name,
)
from .message import SipRequest, SipResponse
from .uri import parse_name_addr, parse_uri


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
