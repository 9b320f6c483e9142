"""Request checks a UAS applies after parsing (RFC 3261 §8.2) and response construction (§8.2.6).

Pure functions: no I/O, no clocks. :func:`check_request` returns the first applicable :class:`Rejection` in
RFC 3261 order (method §8.2.1, Request-URI §8.2.2.1, Require §8.2.2.3, content §8.2.3, Accept), or None when
the request may be processed. Things deliberately *not* rejected here:

* Max-Forwards: 0 on a request addressed to us is processed normally — 483 Too Many Hops is for proxies that
  would forward it (RFC 4475 §3.3.11, RFC 3261 §16.3).
* Proxy-Require names extensions for proxies; a UAS ignores it (RFC 4475 §3.3.5).
* Authorization / Proxy-Authorization with an unknown scheme are ignored as if absent (RFC 4475 §3.3.7); see
  :func:`usable_credentials`.
* ACK cannot be answered: only its body is checked, and a Rejection for an ACK means "end the session with BYE"
  (RFC 3261 §13.3.1.4), never "send this response".
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from voicebot.sip.headers import Headers, SipParseError
from voicebot.sip.message import SipRequest, SipResponse
from voicebot.sip.fields import parse_media_type
from voicebot.sip.parser import split_multipart
from voicebot.sip.uri import parse_name_addr, parse_uri

KNOWN_URI_SCHEMES = frozenset({"sip", "sips", "tel"})
# Methods defined by RFC 3261 and its extensions (3262, 3311, 3428, 3515, 3903, 6086, 6665).
KNOWN_METHODS = frozenset({
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO",
    "REFER", "MESSAGE", "UPDATE",
})
_METHOD_ORDER = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "PRACK", "UPDATE", "INFO", "REFER", "NOTIFY",
                 "MESSAGE", "SUBSCRIBE", "PUBLISH", "REGISTER")
_SDP_TYPES = frozenset({"application/sdp", "multipart/mixed"})
# Bodies each method may carry; the effective set is this intersected with the caller's accepted types.
# Methods not listed accept whatever the caller accepts (e.g. message/sipfrag in NOTIFY).
METHOD_CONTENT_TYPES: dict[str, frozenset[str]] = {
    "INVITE": _SDP_TYPES, "UPDATE": _SDP_TYPES, "ACK": _SDP_TYPES, "PRACK": _SDP_TYPES,
    "INFO": frozenset({"application/dtmf-relay", "application/dtmf"}),
    "MESSAGE": frozenset({"text/plain"}),
}
SUPPORTED_CONTENT_ENCODINGS = frozenset({"identity"})
CREDENTIAL_SCHEMES = frozenset({"digest"})


@dataclass(frozen=True)
class Rejection:
    """The response a UAS must send instead of processing a request."""

    status: int
    reason: str
    extra_headers: list[tuple[str, str]] = field(default_factory=list)


def _allow_value(methods: set[str]) -> str:
    ordered = [m for m in _METHOD_ORDER if m in methods]
    ordered += sorted(m for m in methods if m not in _METHOD_ORDER)
    return ", ".join(ordered)


def _reject(status: int, extra: list[tuple[str, str]] | None = None) -> Rejection:
    return Rejection(status, default_reason(status), extra or [])


def check_request(req: SipRequest, *, supported_methods: set[str], supported_extensions: set[str],
                  accepted_content_types: set[str]) -> Rejection | None:
    """Return the Rejection a UAS owes ``req`` (RFC 3261 §8.2), or None to process it.

    * unknown method → 501, known but unsupported (REGISTER at a non-registrar, ...) → 405; both with Allow
    * Request-URI scheme other than sip/sips/tel → 416; sip URI carrying ?headers → 400 (RFC 4475 §3.1.2.11)
    * Require with option tags outside ``supported_extensions`` → 420 with Unsupported (not for ACK/CANCEL)
    * body whose Content-Type the method does not take, or a Content-Encoding other than identity → 415 with
      Accept / Accept-Encoding; a body without Content-Type → 400
    * INVITE whose Accept header excludes application/sdp → 406
    Max-Forwards 0 is processed normally (endpoints never answer 483, RFC 4475 §3.3.11); Proxy-Require and
    unknown Authorization schemes are ignored.
    """
    method = req.method
    allow = [("Allow", _allow_value(supported_methods))]
    if method == "ACK":
        return _check_body(req, accepted_content_types)
    if method not in supported_methods:
        return _reject(501 if method not in KNOWN_METHODS else 405, allow)
    try:
        uri = parse_uri(req.uri)
    except SipParseError:
        return Rejection(400, "Bad Request-URI")
    if uri.scheme not in KNOWN_URI_SCHEMES:
        return _reject(416)
    if uri.is_sip and uri.headers is not None:
        return Rejection(400, "Headers Not Allowed In Request-URI")
    if method != "CANCEL":
        supported = {ext.lower() for ext in supported_extensions}
        unsupported: list[str] = []
        for tag in req.headers.values("Require"):
            if tag.lower() not in supported and tag not in unsupported:
                unsupported.append(tag)
        if unsupported:
            return _reject(420, [("Unsupported", ", ".join(unsupported))])
    rejection = _check_body(req, accepted_content_types)
    if rejection is not None:
        return rejection
    if method == "INVITE" and "Accept" in req.headers and not _accepts(req.headers, "application/sdp"):
        return _reject(406)
    return None


def acceptable_content_types(method: str, accepted_content_types: set[str]) -> list[str]:
    """Body types ``method`` may carry here, sorted (what an Accept header in a 415 lists)."""
    accepted = {t.lower() for t in accepted_content_types}
    per_method = METHOD_CONTENT_TYPES.get(method)
    return sorted(accepted & per_method if per_method is not None else accepted)


def _check_body(req: SipRequest, accepted_content_types: set[str]) -> Rejection | None:
    """RFC 3261 §8.2.3: Content-Encoding, Content-Type (multipart/mixed must hold SDP for session methods)."""
    if not req.body:
        return None
    encodings = [e.lower() for e in req.headers.values("Content-Encoding")]
    if any(e not in SUPPORTED_CONTENT_ENCODINGS for e in encodings):
        return _reject(415, [("Accept-Encoding", ", ".join(sorted(SUPPORTED_CONTENT_ENCODINGS)))])
    content_type = req.headers.get("Content-Type")
    if content_type is None:
        return Rejection(400, "Missing Content-Type")
    if _optional_body(req.headers):
        return None
    allowed = acceptable_content_types(req.method, accepted_content_types)
    accept = [("Accept", ", ".join(allowed))] if allowed else []
    try:
        media_type, _ = parse_media_type(content_type)
    except SipParseError:
        return Rejection(400, "Malformed Content-Type")
    if media_type not in allowed:
        return _reject(415, accept)
    if media_type == "multipart/mixed" and req.method in METHOD_CONTENT_TYPES \
            and METHOD_CONTENT_TYPES[req.method] is _SDP_TYPES:
        try:
            parts = split_multipart(content_type, req.body)
        except SipParseError:
            return Rejection(400, "Malformed Multipart Body")
        part_types = []
        for part_headers, _ in parts:
            try:
                part_types.append(parse_media_type(part_headers.get("Content-Type") or "text/plain")[0])
            except SipParseError:
                return Rejection(400, "Malformed Multipart Body")
        if "application/sdp" not in part_types:
            return _reject(415, accept)
    return None


def _optional_body(headers: Headers) -> bool:
    """Content-Disposition handling=optional lets a UAS ignore a body it does not understand (§20.11)."""
    disposition = headers.get("Content-Disposition")
    if not disposition or ";" not in disposition:
        return False
    params = disposition.split(";")[1:]
    return any(p.replace(" ", "").lower() == "handling=optional" for p in params)


def _accepts(headers: Headers, media_type: str) -> bool:
    """Whether the Accept header(s) admit ``media_type`` (wildcards honoured, q=0 excludes)."""
    main = media_type.split("/", 1)[0]
    for value in headers.values("Accept"):
        try:
            accepted, params = parse_media_type(value)
        except SipParseError:
            continue
        if accepted in (media_type, f"{main}/*", "*/*"):
            q = (params.get("q") or "1").strip()
            try:
                if float(q) > 0:
                    return True
            except ValueError:
                continue
    return False


def usable_credentials(req: SipRequest, header: str = "Authorization") -> list[str]:
    """Authorization (or Proxy-Authorization) values whose scheme we implement; unknown schemes are ignored
    as if no credentials had been sent (RFC 4475 §3.3.7)."""
    out = []
    for value in req.headers.get_all(header):
        scheme = value.strip().split(None, 1)[0] if value.strip() else ""
        if scheme.lower() in CREDENTIAL_SCHEMES:
            out.append(value)
    return out


_DIALOG_METHODS = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})


def build_response(source: SipRequest | Headers | None, status: int, reason: str = "",
                   extra_headers: list[tuple[str, str]] | None = None,
                   to_tag: str | None = None) -> SipResponse | None:
    """Form a response to a request, or to the headers of a SipParseError (RFC 3261 §8.2.6).

    Copies every Via (in order), From, To, Call-ID and CSeq; adds a To tag when the request had none and the
    status is above 100 (``to_tag`` or a random one); copies Timestamp into 100 Trying and Record-Route into
    101–299 responses of dialog-creating methods (§12.1.1). ``reason`` defaults to :func:`default_reason`.
    Returns None when there is no Via (the response cannot be routed) or a copied value holds a stray CR/LF;
    a request lacking From, To, Call-ID or CSeq gets a response without them (a 400 telling why).
    """
    if source is None:
        return None
    headers = source.headers if isinstance(source, SipRequest) else source
    vias = headers.get_all("Via")
    copied = {name: headers.get(name) for name in ("From", "To", "Call-ID", "CSeq")}
    if not vias:
        return None
    if any("\r" in v or "\n" in v for v in [*vias, *copied.values()] if v is not None):
        return None  # values from a message with bare CR/LF cannot be echoed safely
    to_value = copied["To"]
    if to_value is not None and status > 100 and not _has_tag(to_value):
        to_value = f"{to_value};tag={to_tag or secrets.token_hex(6)}"
    out = Headers()
    for via in vias:
        out.add("Via", via)
    for name, value in (("From", copied["From"]), ("To", to_value), ("Call-ID", copied["Call-ID"]),
                        ("CSeq", copied["CSeq"])):
        if value is not None:
            out.add(name, value)
    cseq_method = (copied["CSeq"] or "").split()[-1:] or [""]
    if status == 100 and "Timestamp" in headers:
        out.add("Timestamp", headers.get("Timestamp") or "")
    if 101 <= status <= 299 and cseq_method[0] in _DIALOG_METHODS:
        for record_route in headers.get_all("Record-Route"):
            out.add("Record-Route", record_route)
    for name, value in extra_headers or []:
        out.add(name, value)
    return SipResponse(headers=out, status=status, reason=reason or default_reason(status))


def _has_tag(to_value: str) -> bool:
    try:
        return parse_name_addr(to_value).tag is not None
    except SipParseError:
        # A malformed To is echoed as received; look for a tag parameter outside the URI as best we can.
        tail = to_value.rsplit(">", 1)[-1]
        return any(p.strip().lower().startswith("tag") and "=" in p for p in tail.split(";")[1:])


_REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority", 420: "Bad Extension", 421: "Extension Required",
    422: "Session Interval Too Small", 423: "Interval Too Brief", 424: "Bad Location Information",
    428: "Use Identity Header", 429: "Provide Referrer Identity", 433: "Anonymity Disallowed",
    436: "Bad Identity-Info", 437: "Unsupported Certificate", 438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support", 440: "Max-Breadth Exceeded", 469: "Bad Info Package",
    470: "Consent Needed", 480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 489: "Bad Event",
    491: "Request Pending", 493: "Undecipherable", 494: "Security Agreement Required",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    555: "Push Notification Service Not Supported", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
    607: "Unwanted", 608: "Rejected",
}
_CLASS_REASONS = {1: "Provisional", 2: "Success", 3: "Redirection", 4: "Client Error", 5: "Server Error",
                  6: "Global Failure"}


def default_reason(status: int) -> str:
    """The standard reason phrase for ``status`` (RFC 3261 §21 and extensions), else its class name."""
    if not 100 <= status <= 699:
        raise ValueError(f"SIP status code must be 100-699, got {status}")
    return _REASONS.get(status) or _CLASS_REASONS[status // 100]
