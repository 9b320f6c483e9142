"""SDP (RFC 8866) parsing/serialisation and the offer/answer model (RFC 3264) for G.711 voice calls, with SDES
SRTP keying (RFC 4568, ``a=crypto``; the line format lives in :mod:`voicebot.sip.sdes`).

Pure logic: no sockets, no clocks except an optional random session id.

Codec choice policy: when answering, we pick the first codec in OUR preference order that the offer
contains (the server decides; callers reorder ``preference`` to change it). The answer lists exactly
one audio codec plus telephone-event, so the peer has no choice left to make. Only the first usable
audio stream is accepted; every other m-line is rejected with port 0 (RFC 3264 §6).

Media encryption policy (``none | optional | required``): ``none`` answers RTP/AVP only and ignores crypto lines;
``optional`` uses SRTP when the offer carries a usable crypto line (RTP/SAVP, or RTP/AVP with a=crypto — "best
effort" SRTP as baresip's ``mediaenc=srtp`` offers it) and plain RTP otherwise; ``required`` accepts only a stream
with a usable crypto line (else :class:`NoCommonCodec`, answered 488). Our offers follow the same policy: RTP/AVP
without crypto, RTP/AVP with crypto lines, or RTP/SAVP with crypto lines.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from typing import Literal

from .sdes import SUITES, CryptoAttribute, SdesError, new_crypto, parse_crypto, unusable_reason

__all__ = [
    "Attribute",
    "Codec",
    "Connection",
    "DIRECTIONS",
    "ENCRYPTION_POLICIES",
    "Encryption",
    "MediaDescription",
    "Negotiated",
    "NoCommonCodec",
    "Origin",
    "SdpError",
    "SessionDescription",
    "SrtpKeys",
    "apply_answer",
    "build_offer",
    "increment_version",
    "negotiate",
    "parse_sdp",
    "with_direction",
]

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
PLAIN_RTP_PROFILE = "RTP/AVP"
SECURE_RTP_PROFILE = "RTP/SAVP"
Encryption = Literal["none", "optional", "required"]
ENCRYPTION_POLICIES: tuple[Encryption, ...] = ("none", "optional", "required")
TELEPHONE_EVENT = "telephone-event"
TELEPHONE_EVENT_FMTP = "0-16"
DEFAULT_PTIME_MS = 20

_MIRRORED_DIRECTION = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
# Removing our ability to send (peer address is a null "hold" address).
_WITHOUT_SEND = {"sendrecv": "recvonly", "sendonly": "inactive", "recvonly": "recvonly", "inactive": "inactive"}
_NULL_ADDRESSES = {"0.0.0.0", "::"}
_SECURE_PROFILE = re.compile(r"(^|/)SAVPF?$")
_DIGITS = re.compile(r"[0-9]+")
_DOTTED = re.compile(r"[0-9.]+")
_FQDN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_LINE = re.compile(r"([a-z])=(.*)")
_RTPMAP = re.compile(r"([0-9]+)\s+([^/\s]+)/([0-9]+)(?:/([0-9]+))?\s*")
# Canonical order of session-level lines after v=, o=, s= (RFC 8866 §5); unknown letters go before a=.
_SESSION_ORDER = {"i": 1, "u": 2, "e": 3, "p": 4, "c": 5, "b": 6, "t": 7, "r": 7, "z": 8, "k": 9}
_MEDIA_ORDER = {"i": 1, "c": 2, "b": 3, "k": 4}
_LAST_RANK = 10


class SdpError(ValueError):
    """Malformed or unusable SDP; ``reason`` says what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NoCommonCodec(SdpError):
    """The offer (or answer) has no audio stream we can use; a UAS answers 488 Not Acceptable Here."""


@dataclass(frozen=True)
class Codec:
    """An RTP payload format: encoding name, payload type and RTP clock rate."""

    name: str
    payload_type: int
    clock_rate: int
    channels: int = 1

    def rtpmap_value(self) -> str:
        suffix = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.payload_type} {self.name}/{self.clock_rate}{suffix}"


# Static payload types (RFC 3551 table 4) that matter for telephony; they apply without a=rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, Codec] = {
    0: Codec("PCMU", 0, 8000),
    3: Codec("GSM", 3, 8000),
    4: Codec("G723", 4, 8000),
    8: Codec("PCMA", 8, 8000),
    9: Codec("G722", 9, 8000),
    18: Codec("G729", 18, 8000),
}
# Codecs we can name in a preference list: name -> static codec.
KNOWN_CODECS: dict[str, Codec] = {
    name: STATIC_PAYLOAD_TYPES[pt] for name, pt in (("PCMU", 0), ("PCMA", 8), ("G722", 9))
}


@dataclass
class Attribute:
    """One ``a=`` line: ``a=name`` (flag, value None) or ``a=name:value``."""

    name: str
    value: str | None = None

    def serialize(self) -> str:
        return f"a={self.name}" if self.value is None else f"a={self.name}:{self.value}"


@dataclass
class Connection:
    """A ``c=`` line. ``address`` may carry a multicast /ttl suffix, kept verbatim."""

    address: str
    addr_type: str = "IP4"
    net_type: str = "IN"

    @property
    def host(self) -> str:
        return self.address.split("/")[0]

    @property
    def is_null(self) -> bool:
        """True for the RFC 2543 hold address 0.0.0.0 (or :: for IPv6)."""
        return self.host in _NULL_ADDRESSES

    def serialize(self) -> str:
        return f"c={self.net_type} {self.addr_type} {self.address}"


@dataclass
class Origin:
    """The ``o=`` line."""

    username: str
    session_id: int
    session_version: int
    address: str
    addr_type: str = "IP4"
    net_type: str = "IN"

    def serialize(self) -> str:
        return (
            f"o={self.username} {self.session_id} {self.session_version} "
            f"{self.net_type} {self.addr_type} {self.address}"
        )


class _AttributeHolder:
    attributes: list[Attribute]

    def attribute(self, name: str) -> str | None:
        """Value of the first ``a=name`` line ('' for a flag), or None when absent."""
        for attr in self.attributes:
            if attr.name == name:
                return attr.value if attr.value is not None else ""
        return None

    def attribute_values(self, name: str) -> list[str]:
        return [a.value if a.value is not None else "" for a in self.attributes if a.name == name]

    @property
    def direction(self) -> str | None:
        """The explicit direction attribute here, or None (then the session-level one or sendrecv applies)."""
        for attr in self.attributes:
            if attr.name in DIRECTIONS and attr.value is None:
                return attr.name
        return None

    def set_direction(self, direction: str) -> None:
        _check_direction(direction)
        self.attributes = [a for a in self.attributes if not (a.name in DIRECTIONS and a.value is None)]
        self.attributes.append(Attribute(direction))


@dataclass
class MediaDescription(_AttributeHolder):
    """An ``m=`` section with its own c=, a= and other lines."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    connection: Connection | None = None
    attributes: list[Attribute] = field(default_factory=list)
    other_lines: list[tuple[str, str]] = field(default_factory=list)  # i=, b=, k= and unknown types

    @property
    def rejected(self) -> bool:
        return self.port == 0

    def rtpmaps(self) -> dict[int, Codec]:
        """Codecs declared by well-formed a=rtpmap lines, by payload type (the first wins)."""
        codecs: dict[int, Codec] = {}
        for value in self.attribute_values("rtpmap"):
            codec = _parse_rtpmap(value)
            if codec is not None:
                codecs.setdefault(codec.payload_type, codec)
        return codecs

    def codecs(self) -> list[Codec]:
        """Payload formats in m= order, resolved by a=rtpmap or the static table; unknown dynamic PTs skipped."""
        if not self.proto.startswith("RTP/") and "/RTP/" not in self.proto:
            return []
        declared = self.rtpmaps()
        result: list[Codec] = []
        for fmt in self.formats:
            if not _DIGITS.fullmatch(fmt):
                continue
            pt = int(fmt)
            codec = declared.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
            if codec is not None:
                result.append(codec)
        return result

    def fmtp(self, payload_type: int) -> str | None:
        prefix = f"{payload_type} "
        for value in self.attribute_values("fmtp"):
            if value.startswith(prefix):
                return value[len(prefix) :].strip()
        return None

    def serialize_lines(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        lines = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}"]
        lines += _ordered(self.other_lines, self.connection, _MEDIA_ORDER, connection_rank=2)
        lines += [a.serialize() for a in self.attributes]
        return lines


@dataclass
class SessionDescription(_AttributeHolder):
    """A whole SDP body. ``other_lines`` keeps i=, u=, e=, p=, b=, t=, r=, z=, k= and unknown types in order."""

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    other_lines: list[tuple[str, str]] = field(default_factory=lambda: [("t", "0 0")])
    version: int = 0

    def serialize(self) -> str:
        """The SDP text with CRLF line endings (including after the last line)."""
        lines = [f"v={self.version}", self.origin.serialize(), f"s={self.session_name}"]
        lines += _ordered(self.other_lines, self.connection, _SESSION_ORDER, connection_rank=5)
        lines += [a.serialize() for a in self.attributes]
        for media in self.media:
            lines += media.serialize_lines()
        return "\r\n".join(lines) + "\r\n"

    def encode(self) -> bytes:
        return self.serialize().encode("utf-8")

    def media_direction(self, media: MediaDescription) -> str:
        """Direction of ``media``: its own attribute, else the session-level one, else sendrecv."""
        return media.direction or self.direction or "sendrecv"

    def media_connection(self, media: MediaDescription) -> Connection | None:
        return media.connection or self.connection


@dataclass(frozen=True)
class SrtpKeys:
    """The SDES outcome for one stream: the suite, the crypto tag, and the master keys (key || salt) each side
    sends with. Keys never appear in a repr."""

    suite: str
    tag: int
    local_key: bytes = field(repr=False)
    remote_key: bytes = field(repr=False)
    window_size: int | None = None


@dataclass
class Negotiated:
    """Outcome of offer/answer for the single audio stream.

    ``direction`` is seen from us (``sendonly`` = we send, the peer does not). ``on_hold`` is True when the
    peer's SDP puts us on hold (it is sendonly/inactive or gives a null connection address).
    """

    answer: SessionDescription
    codec: Codec
    dtmf_payload_type: int | None
    remote_host: str
    remote_port: int
    direction: str
    on_hold: bool
    ptime_ms: int = DEFAULT_PTIME_MS
    media_index: int = 0
    srtp: SrtpKeys | None = None


# ---------------------------------------------------------------- parsing


def parse_sdp(body: str | bytes) -> SessionDescription:
    """Parse an SDP body; raise :class:`SdpError` naming the offending line when it is malformed."""
    text = _decode(body)
    lines = [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), start=1)]
    lines = [(n, line) for n, line in lines if line.strip()]
    if not lines:
        raise SdpError("empty SDP body")
    typed: list[tuple[int, str, str]] = []
    for n, line in lines:
        match = _LINE.fullmatch(line)
        if match is None:
            raise SdpError(f"line {n}: expected '<letter>=<value>', got {_shorten(line)!r}")
        typed.append((n, match.group(1), match.group(2)))

    n, kind, value = typed[0]
    if kind != "v":
        raise SdpError(f"missing v= line: SDP must start with 'v=0', line {n} is {kind}=")
    if value.strip() != "0":
        raise SdpError(f"line {n}: unsupported SDP version {value!r} (only v=0 exists)")

    origin: Origin | None = None
    session_name: str | None = None
    session_conn: Connection | None = None
    session_attrs: list[Attribute] = []
    session_other: list[tuple[str, str]] = []
    media: list[MediaDescription] = []
    current: MediaDescription | None = None

    for n, kind, value in typed[1:]:
        if kind == "v":
            raise SdpError(f"line {n}: second v= line (only one session description is allowed)")
        if kind == "m":
            current = _parse_media_line(n, value)
            media.append(current)
        elif kind == "a":
            attr = _parse_attribute(n, value)
            (current.attributes if current else session_attrs).append(attr)
        elif kind == "c":
            conn = _parse_connection(n, value)
            if current is None:
                session_conn = conn
            else:
                current.connection = conn
        elif current is not None:
            if kind in ("o", "s", "t", "r", "z", "u", "e", "p"):
                raise SdpError(f"line {n}: {kind}= is a session-level line but appears inside an m= section")
            current.other_lines.append((kind, value))
        elif kind == "o":
            if origin is not None:
                raise SdpError(f"line {n}: duplicate o= line")
            origin = _parse_origin(n, value)
        elif kind == "s":
            session_name = value
        else:
            session_other.append((kind, value))

    if origin is None:
        raise SdpError("missing o= line (origin is mandatory)")
    if not media:
        raise SdpError("no m= line: the SDP describes no media stream")
    return SessionDescription(
        origin=origin,
        session_name=session_name if session_name is not None else "-",
        connection=session_conn,
        attributes=session_attrs,
        media=media,
        other_lines=session_other,
    )


def _decode(body: str | bytes) -> str:
    if isinstance(body, (bytes, bytearray, memoryview)):
        try:
            return bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError(f"SDP body is not valid UTF-8 (byte {exc.start})") from None
    if not isinstance(body, str):
        raise SdpError(f"SDP body must be str or bytes, not {type(body).__name__}")
    return body


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _parse_origin(n: int, value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SdpError(
            f"line {n}: o= needs 6 fields '<user> <sess-id> <sess-version> IN <IP4|IP6> <address>', "
            f"got {len(parts)}: {_shorten(value)!r}"
        )
    user, sess_id, sess_version, net_type, addr_type, address = parts
    if not _DIGITS.fullmatch(sess_id):
        raise SdpError(f"line {n}: o= session id {sess_id!r} is not a number")
    if not _DIGITS.fullmatch(sess_version):
        raise SdpError(f"line {n}: o= session version {sess_version!r} is not a number")
    return Origin(user, int(sess_id), int(sess_version), address, addr_type, net_type)


def _parse_connection(n: int, value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise SdpError(f"line {n}: c= needs 'IN <IP4|IP6> <address>', got {_shorten(value)!r}")
    net_type, addr_type, address = parts
    if net_type != "IN":
        raise SdpError(f"line {n}: c= network type {net_type!r} is not supported (only IN)")
    if addr_type not in ("IP4", "IP6"):
        raise SdpError(f"line {n}: c= address type {addr_type!r} is not supported (IP4 or IP6)")
    _check_connection_address(n, addr_type, address)
    return Connection(address, addr_type, net_type)


def _check_connection_address(n: int, addr_type: str, address: str) -> None:
    """An IP4 c= address is a dotted quad (optionally /ttl for multicast) or a host name; IP6 an IPv6 address."""
    host = address.split("/", 1)[0]
    try:
        if addr_type == "IP6":
            ipaddress.IPv6Address(host)
        elif _DOTTED.fullmatch(host):
            ipaddress.IPv4Address(host)
        elif not _FQDN.fullmatch(host):
            raise ValueError("neither an IPv4 address nor a host name")
    except ValueError:
        raise SdpError(f"line {n}: c= address {_shorten(address)!r} is not a valid {addr_type} address") from None


def _parse_media_line(n: int, value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"line {n}: bad m= line, expected '<media> <port> <proto> <fmt> ...', got {_shorten(value)!r}")
    media_type, port_text, proto, *formats = parts
    port_part, slash, count_part = port_text.partition("/")
    if not _DIGITS.fullmatch(port_part):
        raise SdpError(f"line {n}: m= port {port_part!r} is not a number")
    port = int(port_part)
    if port > 65535:
        raise SdpError(f"line {n}: m= port {port} is out of range (0-65535)")
    port_count: int | None = None
    if slash:
        if not _DIGITS.fullmatch(count_part) or int(count_part) == 0:
            raise SdpError(f"line {n}: m= port count {count_part!r} is not a positive number")
        port_count = int(count_part)
    return MediaDescription(media_type, port, proto, formats, port_count)


def _parse_attribute(n: int, value: str) -> Attribute:
    name, colon, attr_value = value.partition(":")
    if not name or any(ch.isspace() for ch in name):
        raise SdpError(f"line {n}: bad attribute name in a={_shorten(value)!r}")
    # a=rtpmap is kept verbatim even when malformed (RFC 4475 messages carry "a=rtpmap:31 LPC");
    # a malformed one is simply not used to resolve a payload type.
    return Attribute(name, attr_value if colon else None)


def _parse_rtpmap(value: str) -> Codec | None:
    match = _RTPMAP.fullmatch(value)
    if match is None or int(match.group(1)) > 127:
        return None
    channels = int(match.group(4)) if match.group(4) else 1
    return Codec(match.group(2), int(match.group(1)), int(match.group(3)), channels)


def _ordered(
    other: list[tuple[str, str]], connection: Connection | None, order: dict[str, int], connection_rank: int
) -> list[str]:
    ranked = [(order.get(kind, _LAST_RANK), f"{kind}={value}") for kind, value in other]
    if connection is not None:
        ranked.append((connection_rank, connection.serialize()))
    ranked.sort(key=lambda item: item[0])  # stable: keeps t=/r= pairs and repeated lines in order
    return [line for _, line in ranked]


# ---------------------------------------------------------------- building


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")


def _address_type(ip: str) -> str:
    try:
        return "IP6" if ipaddress.ip_address(ip).version == 6 else "IP4"
    except ValueError:
        return "IP4"  # a host name; RFC 8866 allows an FQDN with IP4


def _check_port(port: int) -> None:
    if not isinstance(port, int) or not 0 < port <= 65535:
        raise ValueError(f"local RTP port must be 1-65535, got {port!r}")


def _known_codec(name: str) -> Codec:
    codec = KNOWN_CODECS.get(name.upper())
    if codec is None:
        raise ValueError(f"unknown codec {name!r}; supported: {', '.join(KNOWN_CODECS)}")
    return codec


def _new_session(local_ip: str, session_id: int | None) -> SessionDescription:
    addr_type = _address_type(local_ip)
    sid = session_id if session_id is not None else secrets.randbelow(2**62) + 1
    return SessionDescription(
        origin=Origin("voicebot", sid, sid, local_ip, addr_type),
        session_name="voicebot",
        connection=Connection(local_ip, addr_type),
    )


def _audio_media(
    port: int, codec: Codec, dtmf_payload_type: int | None, direction: str, extra_codecs: tuple[Codec, ...] = (),
    proto: str = PLAIN_RTP_PROFILE, crypto: tuple[CryptoAttribute, ...] = (),
) -> MediaDescription:
    codecs = [codec, *extra_codecs]
    formats = [str(c.payload_type) for c in codecs]
    attributes = [Attribute("rtpmap", c.rtpmap_value()) for c in codecs]
    if dtmf_payload_type is not None:
        formats.append(str(dtmf_payload_type))
        attributes.append(Attribute("rtpmap", f"{dtmf_payload_type} {TELEPHONE_EVENT}/8000"))
        attributes.append(Attribute("fmtp", f"{dtmf_payload_type} {TELEPHONE_EVENT_FMTP}"))
    attributes.append(Attribute("ptime", str(DEFAULT_PTIME_MS)))
    attributes.append(Attribute(direction))
    attributes += [Attribute("crypto", line.serialize()) for line in crypto]
    return MediaDescription("audio", port, proto, formats, attributes=attributes)


def _check_encryption(encryption: str) -> None:
    if encryption not in ENCRYPTION_POLICIES:
        raise ValueError(f"media encryption must be one of {', '.join(ENCRYPTION_POLICIES)}, not {encryption!r}")


def build_offer(
    local_ip: str,
    local_port: int,
    codecs: list[str] = ["PCMU", "PCMA"],  # noqa: B006 - never mutated
    dtmf_payload_type: int | None = 101,
    session_id: int | None = None,
    direction: str = "sendrecv",
    encryption: Encryption = "none",
) -> SessionDescription:
    """An SDP offer for one audio stream listing ``codecs`` in order, plus telephone-event.

    ``encryption`` optional offers RTP/AVP with a crypto line per suite (fresh keys); required offers RTP/SAVP
    with them. The keys stay in the returned SDP, where :func:`apply_answer` finds the one the answer chose."""
    _check_direction(direction)
    _check_encryption(encryption)
    _check_port(local_port)
    if not codecs:
        raise ValueError("an offer needs at least one codec")
    resolved = [_known_codec(name) for name in codecs]
    if dtmf_payload_type is not None and not 96 <= dtmf_payload_type <= 127:
        raise ValueError(f"telephone-event needs a dynamic payload type (96-127), got {dtmf_payload_type}")
    sd = _new_session(local_ip, session_id)
    crypto = tuple(new_crypto(tag, suite) for tag, suite in enumerate(SUITES, start=1)) if encryption != "none" else ()
    proto = SECURE_RTP_PROFILE if encryption == "required" else PLAIN_RTP_PROFILE
    sd.media.append(_audio_media(local_port, resolved[0], dtmf_payload_type, direction, tuple(resolved[1:]),
                                 proto, crypto))
    return sd


def increment_version(sd: SessionDescription) -> SessionDescription:
    """A copy of ``sd`` with the o= session version raised by one, as a re-offer requires (RFC 3264 §8)."""
    new = copy.deepcopy(sd)
    new.origin.session_version += 1
    return new


def with_direction(sd: SessionDescription, direction: str) -> SessionDescription:
    """A copy of ``sd`` whose active audio streams carry ``direction`` (hold: sendonly; resume: sendrecv).

    The o= version is not changed; combine with :func:`increment_version` for a re-offer.
    """
    _check_direction(direction)
    new = copy.deepcopy(sd)
    for media in new.media:
        if media.media == "audio" and not media.rejected:
            media.set_direction(direction)
    return new


# ---------------------------------------------------------------- offer/answer


def _rejected_copy(media: MediaDescription) -> MediaDescription:
    formats = media.formats or ["0"]
    return MediaDescription(media.media, 0, media.proto, list(formats))


def _find_dtmf(media: MediaDescription, clock_rate: int) -> int | None:
    for pt, codec in media.rtpmaps().items():
        if codec.name.lower() == TELEPHONE_EVENT and codec.clock_rate == clock_rate and str(pt) in media.formats:
            return pt
    return None


def _choose_codec(media: MediaDescription, preference: list[Codec]) -> Codec | None:
    offered = media.codecs()
    for wanted in preference:
        for codec in offered:
            if codec.name.upper() == wanted.name and codec.clock_rate == wanted.clock_rate and codec.channels == 1:
                return codec
    return None


def _remote_endpoint(sd: SessionDescription, media: MediaDescription, which: str) -> Connection:
    conn = sd.media_connection(media)
    if conn is None:
        raise SdpError(f"{which} audio stream has no connection address (no c= line at session or media level)")
    return conn


def _ptime(media: MediaDescription) -> int:
    value = media.attribute("ptime")
    if value and _DIGITS.fullmatch(value.strip()) and 10 <= int(value) <= 200:
        return int(value)
    return DEFAULT_PTIME_MS


def _crypto_lines(media: MediaDescription) -> tuple[list[CryptoAttribute], list[str]]:
    """The media's usable crypto lines in offer order, and why the others are not usable."""
    usable: list[CryptoAttribute] = []
    reasons: list[str] = []
    for value in media.attribute_values("crypto"):
        try:
            crypto = parse_crypto(value)
        except SdesError as exc:
            reasons.append(str(exc))
            continue
        reason = unusable_reason(crypto)
        if reason is None:
            usable.append(crypto)
        else:
            reasons.append(reason)
    return usable, reasons


def _security(media: MediaDescription, encryption: Encryption) -> tuple[bool, CryptoAttribute | None, str]:
    """Whether ``media`` is acceptable under ``encryption``, the crypto line to use, and the refusal reason."""
    if media.proto == PLAIN_RTP_PROFILE:
        if encryption == "none":
            return True, None, ""
        usable, reasons = _crypto_lines(media)
        if usable:
            return True, usable[0], ""
        if encryption == "optional":
            return True, None, ""
        detail = f" ({'; '.join(reasons)})" if reasons else ""
        return False, None, f"media_encryption is required here and the offer has no usable a=crypto{detail}"
    if media.proto == SECURE_RTP_PROFILE:
        if encryption == "none":
            return False, None, "offer requires SRTP (RTP/SAVP) but media_encryption is none here"
        usable, reasons = _crypto_lines(media)
        if usable:
            return True, usable[0], ""
        detail = "; ".join(reasons) if reasons else "no a=crypto line"
        return False, None, f"SRTP offer has no usable a=crypto: {detail} (we run {', '.join(SUITES)})"
    if _SECURE_PROFILE.search(media.proto):
        return False, None, (f"offered transport {media.proto} (DTLS-SRTP or SAVPF) is not supported; SRTP only as "
                             f"RTP/SAVP with SDES a=crypto")
    return False, None, f"offered audio transport {media.proto} is not supported; only RTP/AVP and RTP/SAVP are"


def _answer_keys(crypto: CryptoAttribute, current: SrtpKeys | None) -> SrtpKeys:
    """Our side of the SDES answer: a fresh key, unless this re-offer repeats the peer's key and suite."""
    keep = current is not None and current.suite == crypto.suite and current.remote_key == crypto.key
    local = current.local_key if keep and current is not None else new_crypto(crypto.tag, crypto.suite).key
    return SrtpKeys(crypto.suite, crypto.tag, local, crypto.key, crypto.window_size)


def negotiate(
    offer: SessionDescription,
    local_ip: str,
    local_port: int,
    preference: list[str] = ["PCMU", "PCMA"],  # noqa: B006 - never mutated
    session_id: int | None = None,
    encryption: Encryption = "none",
    current_srtp: SrtpKeys | None = None,
) -> Negotiated:
    """Answer ``offer`` (we are the answerer); raise :class:`NoCommonCodec` when no audio stream is usable.

    The codec is the first of OUR ``preference`` that the offer lists. telephone-event is accepted with the
    offerer's payload type when offered at the codec's clock rate. The answer mirrors the offered direction.
    With SRTP the first usable crypto line of the stream is taken and answered with its tag and our own key; a
    re-offer (``current_srtp`` from the last negotiation) that repeats the peer's key keeps ours, a new key from
    the peer (rekey) gets a new one from us.
    """
    _check_port(local_port)
    _check_encryption(encryption)
    wanted = [_known_codec(name) for name in preference]
    if not wanted:
        raise ValueError("preference must name at least one codec")
    answer = _new_session(local_ip, session_id)
    chosen: tuple[int, MediaDescription, Codec, CryptoAttribute | None] | None = None
    saw_audio = False
    refusals: list[str] = []
    for index, media in enumerate(offer.media):
        if chosen is None and media.media == "audio" and not media.rejected:
            saw_audio = True
            acceptable, crypto, refusal = _security(media, encryption)
            if not acceptable:
                refusals.append(refusal)
            else:
                codec = _choose_codec(media, wanted)
                if codec is not None:
                    chosen = (index, media, codec, crypto)
                    answer.media.append(media)  # placeholder, replaced below
                    continue
        answer.media.append(_rejected_copy(media))

    if chosen is None:
        raise NoCommonCodec(_no_codec_reason(offer, wanted, saw_audio, refusals))
    index, media, codec, crypto = chosen
    conn = _remote_endpoint(offer, media, "offered")
    offered_direction = offer.media_direction(media)
    direction = _MIRRORED_DIRECTION[offered_direction]
    if conn.is_null:
        direction = _WITHOUT_SEND[direction]
    dtmf = _find_dtmf(media, codec.clock_rate)
    keys = _answer_keys(crypto, current_srtp) if crypto is not None else None
    answered_crypto = (CryptoAttribute(crypto.tag, crypto.suite, keys.local_key, session_params=tuple(
        p for p in crypto.session_params if p.startswith("WSH="))),) if crypto is not None and keys else ()
    answer.media[index] = _audio_media(local_port, codec, dtmf, direction, proto=media.proto, crypto=answered_crypto)
    return Negotiated(
        answer=answer,
        codec=codec,
        dtmf_payload_type=dtmf,
        remote_host=conn.host,
        remote_port=media.port,
        direction=direction,
        on_hold=offered_direction in ("sendonly", "inactive") or conn.is_null,
        ptime_ms=_ptime(media),
        media_index=index,
        srtp=keys,
    )


def _no_codec_reason(offer: SessionDescription, wanted: list[Codec], saw_audio: bool, refusals: list[str]) -> str:
    names = "/".join(c.name for c in wanted)
    if not saw_audio:
        kinds = ", ".join(m.media for m in offer.media if not m.rejected) or "none active"
        return f"offer has no active audio stream (media: {kinds})"
    audio = [m for m in offer.media if m.media == "audio" and not m.rejected]
    if len(refusals) == len(audio) and refusals:
        return refusals[0]
    offered = ", ".join(sorted({c.name for m in audio for c in m.codecs()})) or "none recognised"
    return f"no common audio codec: we support {names}, offer has {offered}"


def apply_answer(offer: SessionDescription, answer: SessionDescription) -> Negotiated:
    """Interpret the peer's ``answer`` to our ``offer`` (we are the offerer).

    The codec is the first format in the answer's audio m-line that we offered. ``Negotiated.answer`` holds
    the peer's answer. ``direction`` is from our point of view (answer recvonly -> we are sendonly).
    """
    if len(answer.media) != len(offer.media):
        raise SdpError(
            f"answer has {len(answer.media)} m= lines but the offer had {len(offer.media)} (RFC 3264 §6 requires equal)"
        )
    for index, ours in enumerate(offer.media):
        if ours.media != "audio" or ours.rejected:
            continue
        theirs = answer.media[index]
        if theirs.media != ours.media:
            raise SdpError(f"answer m= line {index + 1} is {theirs.media!r} but the offer's is {ours.media!r}")
        if theirs.rejected:
            raise NoCommonCodec("the answer rejected our audio stream (port 0)")
        if theirs.proto != ours.proto:
            raise SdpError(f"answer changed the transport from {ours.proto} to {theirs.proto}")
        codec = _answered_codec(ours, theirs)
        conn = _remote_endpoint(answer, theirs, "answered")
        answered_direction = answer.media_direction(theirs)
        direction = _MIRRORED_DIRECTION[answered_direction]
        if conn.is_null:
            direction = _WITHOUT_SEND[direction]
        dtmf = _find_dtmf(theirs, codec.clock_rate)
        if dtmf is None and str(_find_dtmf(ours, codec.clock_rate)) in theirs.formats:
            dtmf = _find_dtmf(ours, codec.clock_rate)  # answer listed our PT without repeating the rtpmap
        srtp = _answered_keys(ours, theirs)
        return Negotiated(
            answer=answer,
            codec=codec,
            dtmf_payload_type=dtmf,
            remote_host=conn.host,
            remote_port=theirs.port,
            direction=direction,
            on_hold=answered_direction in ("sendonly", "inactive") or conn.is_null,
            ptime_ms=_ptime(theirs),
            media_index=index,
            srtp=srtp,
        )
    raise SdpError("our offer has no active audio stream")


def _answered_keys(ours: MediaDescription, theirs: MediaDescription) -> SrtpKeys | None:
    """The SDES keys agreed by the answer: its crypto line must name one of our tags with the same suite."""
    offered = {c.tag: c for c in (parse_crypto(v) for v in ours.attribute_values("crypto"))}
    answered = theirs.attribute_values("crypto")
    if not offered or not answered:
        if offered and ours.proto == SECURE_RTP_PROFILE:
            raise NoCommonCodec("the answer to our RTP/SAVP offer has no a=crypto line")
        return None  # best-effort offer answered without crypto: plain RTP
    if len(answered) != 1:
        raise SdpError(f"the answer has {len(answered)} a=crypto lines; it must choose exactly one (RFC 4568 §7.1.2)")
    try:
        crypto = parse_crypto(answered[0])
    except SdesError as exc:
        raise SdpError(f"bad a=crypto in the answer: {exc}") from None
    mine = offered.get(crypto.tag)
    if mine is None or mine.suite != crypto.suite:
        raise NoCommonCodec(f"the answer's a=crypto tag {crypto.tag} {crypto.suite} is not one we offered")
    reason = unusable_reason(crypto)
    if reason is not None:
        raise NoCommonCodec(f"the answer's a=crypto is not usable: {reason}")
    return SrtpKeys(crypto.suite, crypto.tag, mine.key, crypto.key, crypto.window_size)


def _answered_codec(ours: MediaDescription, theirs: MediaDescription) -> Codec:
    offered = {c.payload_type: c for c in ours.codecs() if c.name.upper() in KNOWN_CODECS}
    declared = theirs.rtpmaps()
    for fmt in theirs.formats:
        if not _DIGITS.fullmatch(fmt):
            continue
        pt = int(fmt)
        mine = offered.get(pt)
        if mine is None:
            continue
        stated = declared.get(pt)
        if stated is not None and (stated.name.upper() != mine.name.upper() or stated.clock_rate != mine.clock_rate):
            raise SdpError(
                f"answer maps payload type {pt} to {stated.name}/{stated.clock_rate}, we offered {mine.name}"
            )
        return mine
    listed = " ".join(theirs.formats)
    raise NoCommonCodec(f"answer lists no codec we offered (answer formats: {listed})")
