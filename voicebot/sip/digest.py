"""HTTP Digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760), client and server side.

Pure logic: the clock is passed in, no I/O. Algorithms: MD5, MD5-sess, SHA-256, SHA-256-sess,
SHA-512-256, SHA-512-256-sess; qop=auth (preferred), auth-int, or the legacy no-qop form.

Server nonces are stateless: base64url(timestamp | salt | HMAC-SHA256(secret, timestamp | salt | realm |
algorithm)[:16]). A nonce is therefore bound to the realm and algorithm it was issued for (no downgrade to
MD5 with a SHA-256 nonce) and expires after ``max_age`` seconds. Being stateless, a captured request can be
replayed until its nonce expires; callers needing replay protection must track (nonce, nc) themselves.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "Challenge",
    "DigestError",
    "VerifyResult",
    "build_authorization",
    "challenge_header_name",
    "make_challenge",
    "parse_challenge",
    "parse_challenges",
    "parse_credentials",
    "response_header_name",
    "select_challenge",
    "verify_authorization",
]

# Canonical algorithm spelling -> (hashlib name, session variant?)
_ALGORITHMS: dict[str, tuple[str, bool]] = {
    "MD5": ("md5", False),
    "MD5-sess": ("md5", True),
    "SHA-256": ("sha256", False),
    "SHA-256-sess": ("sha256", True),
    "SHA-512-256": ("sha512_256", False),
    "SHA-512-256-sess": ("sha512_256", True),
}
_CANONICAL = {name.upper(): name for name in _ALGORITHMS}
_TOKEN_END = frozenset(' \t\r\n,="')
_NC = re.compile(r"[0-9a-fA-F]{8}")
_NONCE_MAC_BYTES = 16
_NONCE_LAYOUT = struct.Struct(">Q8s")
_CLOCK_SKEW_S = 5.0


class DigestError(ValueError):
    """A malformed or unsupported challenge / credentials header."""


@dataclass
class Challenge:
    """A parsed WWW-Authenticate / Proxy-Authenticate Digest challenge."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    scheme: str = "Digest"
    params: dict[str, str] = field(default_factory=dict)  # every parameter, names lower-cased

    @property
    def supported(self) -> bool:
        """True when we can answer this challenge (known algorithm, and a qop we can do if qop is given)."""
        return _canonical_algorithm(self.algorithm) is not None and (
            not self.qop or "auth" in self.qop or "auth-int" in self.qop
        )


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_authorization`. ``stale`` means: right password, expired nonce — re-challenge
    with stale=true so the client retries without asking its user."""

    ok: bool
    username: str | None
    stale: bool
    reason: str


# ---------------------------------------------------------------- header syntax


def _parse_auth_header(header_value: str) -> list[tuple[str, dict[str, str]]]:
    """Split ``scheme param=value, param="quoted, value", ...`` (possibly several challenges) into parts."""
    if not isinstance(header_value, str):
        raise DigestError(f"header value must be str, not {type(header_value).__name__}")
    text = header_value
    pos, end = 0, len(text)
    result: list[tuple[str, dict[str, str]]] = []

    def skip(chars: str) -> None:
        nonlocal pos
        while pos < end and text[pos] in chars:
            pos += 1

    def token() -> str:
        nonlocal pos
        start = pos
        while pos < end and text[pos] not in _TOKEN_END:
            pos += 1
        return text[start:pos]

    def quoted() -> str:
        nonlocal pos
        pos += 1  # opening quote
        out: list[str] = []
        while pos < end:
            ch = text[pos]
            if ch == "\\" and pos + 1 < end:
                out.append(text[pos + 1])
                pos += 2
            elif ch == '"':
                pos += 1
                return "".join(out)
            else:
                out.append(ch)
                pos += 1
        raise DigestError("unterminated quoted string in authentication header")

    skip(" \t\r\n,")
    while pos < end:
        scheme = token()
        if not scheme:
            raise DigestError(f"expected an authentication scheme at position {pos}: {text[pos : pos + 20]!r}")
        params: dict[str, str] = {}
        result.append((scheme, params))
        while True:
            skip(" \t\r\n,")
            if pos >= end:
                break
            mark = pos
            name = token()
            if not name:
                raise DigestError(f"unexpected {text[pos]!r} at position {pos} in authentication header")
            skip(" \t")
            if pos >= end or text[pos] != "=":
                pos = mark  # a bare token after a comma starts the next challenge
                break
            pos += 1
            skip(" \t")
            value = quoted() if pos < end and text[pos] == '"' else token()
            key = name.lower()
            if key in params:
                raise DigestError(f"duplicate parameter {name!r} in authentication header")
            params[key] = value
            skip(" \t\r\n")
            if pos < end and text[pos] != ",":
                raise DigestError(f"expected ',' after parameter {name!r}, found {text[pos : pos + 20]!r}")
    if not result:
        raise DigestError("empty authentication header")
    return result


def _quote(value: str) -> str:
    if any(ch in value for ch in "\r\n\0"):
        raise DigestError("header values must not contain CR, LF or NUL")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _canonical_algorithm(name: str) -> str | None:
    return _CANONICAL.get(name.strip().upper())


def _challenge_from(scheme: str, params: dict[str, str]) -> Challenge:
    if scheme.lower() != "digest":
        raise DigestError(f"unsupported authentication scheme {scheme!r}; only Digest is supported")
    if "realm" not in params:
        raise DigestError("Digest challenge has no realm")
    if not params.get("nonce"):
        raise DigestError("Digest challenge has no nonce")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=params.get("algorithm", "MD5"),
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").strip().lower() == "true",
        scheme=scheme,
        params=dict(params),
    )


def parse_challenges(header_value: str) -> list[Challenge]:
    """Every Digest challenge in a header value (several may be comma-joined); other schemes are skipped."""
    parts = _parse_auth_header(header_value)
    challenges = [_challenge_from(s, p) for s, p in parts if s.lower() == "digest"]
    if not challenges:
        schemes = ", ".join(s for s, _ in parts)
        raise DigestError(f"no Digest challenge in header (schemes: {schemes}); only Digest is supported")
    return challenges


def parse_challenge(header_value: str) -> Challenge:
    """Parse one WWW-Authenticate / Proxy-Authenticate value; :class:`DigestError` if not a usable Digest one."""
    parts = _parse_auth_header(header_value)
    if len(parts) > 1:
        raise DigestError(f"header holds {len(parts)} challenges; use parse_challenges()")
    return _challenge_from(*parts[0])


def select_challenge(challenges: list[Challenge]) -> Challenge:
    """The topmost challenge we support (RFC 8760 §2.4 asks the UAC to use the topmost it supports)."""
    for challenge in challenges:
        if challenge.supported:
            return challenge
    algorithms = ", ".join(c.algorithm for c in challenges) or "none"
    raise DigestError(f"no supported Digest challenge (offered algorithms: {algorithms})")


def parse_credentials(header_value: str) -> dict[str, str]:
    """Parameters of an Authorization / Proxy-Authorization Digest value, names lower-cased."""
    parts = _parse_auth_header(header_value)
    scheme, params = parts[0]
    if scheme.lower() != "digest":
        raise DigestError(f"unsupported authorization scheme {scheme!r}; only Digest is supported")
    if len(parts) > 1:
        raise DigestError("authorization header holds more than one credentials set")
    return params


def response_header_name(status: int) -> str:
    """Header carrying our credentials in answer to a 401 or 407 response."""
    if status == 401:
        return "Authorization"
    if status == 407:
        return "Proxy-Authorization"
    raise ValueError(f"status {status} is not an authentication challenge (expected 401 or 407)")


def challenge_header_name(status: int) -> str:
    """Header carrying the challenge in a 401 or 407 response."""
    if status == 401:
        return "WWW-Authenticate"
    if status == 407:
        return "Proxy-Authenticate"
    raise ValueError(f"status {status} is not an authentication challenge (expected 401 or 407)")


# ---------------------------------------------------------------- digest computation


def _hasher(algorithm: str) -> tuple[Callable[[str], str], bool, str]:
    canonical = _canonical_algorithm(algorithm)
    if canonical is None:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}; supported: {', '.join(_ALGORITHMS)}")
    hash_name, session = _ALGORITHMS[canonical]

    def digest(data: str) -> str:
        return hashlib.new(hash_name, data.encode("utf-8")).hexdigest()

    return digest, session, canonical


def _compute_response(
    algorithm: str,
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    cnonce: str | None,
    qop: str | None,
    nc: str | None,
    body: bytes,
) -> str:
    digest, session, _ = _hasher(algorithm)
    ha1 = digest(f"{username}:{realm}:{password}")
    if session:
        if cnonce is None:
            raise DigestError("session algorithms (-sess) need a cnonce")
        ha1 = digest(f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        hash_name = _ALGORITHMS[_hasher(algorithm)[2]][0]
        ha2 = digest(f"{method}:{uri}:{hashlib.new(hash_name, body).hexdigest()}")
    else:
        ha2 = digest(f"{method}:{uri}")
    if qop is None:
        return digest(f"{ha1}:{nonce}:{ha2}")
    return digest(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def build_authorization(
    challenge: Challenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    body: bytes = b"",
    cnonce: str | None = None,
    nc: int = 1,
) -> str:
    """Authorization / Proxy-Authorization header value answering ``challenge`` (see response_header_name).

    qop=auth is used when offered, else auth-int (hashing ``body``), else the legacy RFC 2069 form.
    """
    _, session, algorithm = _hasher(challenge.algorithm)
    if challenge.qop:
        if "auth" in challenge.qop:
            qop: str | None = "auth"
        elif "auth-int" in challenge.qop:
            qop = "auth-int"
        else:
            raise DigestError(f"challenge offers only unsupported qop values: {', '.join(challenge.qop)}")
    else:
        qop = None
        if session:
            raise DigestError(f"algorithm {algorithm} needs qop, but the challenge offers none")
    if not 1 <= nc <= 0xFFFFFFFF:
        raise ValueError(f"nonce count must be 1..0xffffffff, got {nc}")
    if qop is not None and cnonce is None:
        cnonce = secrets.token_hex(8)
    nc_text = f"{nc:08x}" if qop is not None else None
    response = _compute_response(
        challenge.algorithm,
        username=username,
        realm=challenge.realm,
        password=password,
        method=method,
        uri=uri,
        nonce=challenge.nonce,
        cnonce=cnonce if qop is not None else None,
        qop=qop,
        nc=nc_text,
        body=body,
    )
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        f"algorithm={algorithm}",
    ]
    if qop is not None:
        parts.append(f"cnonce={_quote(cnonce or '')}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if qop is not None:
        parts += [f"qop={qop}", f"nc={nc_text}"]
    return "Digest " + ", ".join(parts)


# ---------------------------------------------------------------- server side


def _nonce_mac(secret: bytes, stamp_and_salt: bytes, realm: str, algorithm: str, bind: str = "") -> bytes:
    message = stamp_and_salt + realm.encode("utf-8") + b"\0" + algorithm.encode("ascii")
    if bind:  # e.g. the client's "ip:port": a nonce answered from elsewhere is not ours
        message += b"\0" + bind.encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).digest()[:_NONCE_MAC_BYTES]


def _check_secret(nonce_secret: bytes) -> None:
    if not isinstance(nonce_secret, (bytes, bytearray)) or len(nonce_secret) < 16:
        raise ValueError("nonce_secret must be at least 16 random bytes")


def make_nonce(realm: str, algorithm: str, *, nonce_secret: bytes, now: float, salt: bytes | None = None,
               bind: str = "") -> str:
    """A stateless nonce signed with ``nonce_secret``, carrying its issue time ``now`` (seconds); ``bind`` (e.g.
    the client's source address) is signed in too, so the nonce verifies only with the same ``bind``."""
    _check_secret(nonce_secret)
    canonical = _hasher(algorithm)[2]
    salt = salt if salt is not None else secrets.token_bytes(8)
    if len(salt) != 8:
        raise ValueError("salt must be 8 bytes")
    head = _NONCE_LAYOUT.pack(max(0, int(now)), salt)
    token = head + _nonce_mac(bytes(nonce_secret), head, realm, canonical, bind)
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")


def make_challenge(
    realm: str,
    algorithm: str = "SHA-256",
    *,
    nonce_secret: bytes,
    now: float,
    stale: bool = False,
    salt: bytes | None = None,
    bind: str = "",
) -> str:
    """A WWW-Authenticate / Proxy-Authenticate value with qop=auth and a fresh stateless nonce (see make_nonce)."""
    canonical = _hasher(algorithm)[2]
    nonce = make_nonce(realm, canonical, nonce_secret=nonce_secret, now=now, salt=salt, bind=bind)
    value = f'Digest realm={_quote(realm)}, nonce={_quote(nonce)}, algorithm={canonical}, qop="auth"'
    return value + (", stale=TRUE" if stale else "")


def _nonce_issued_at(nonce: str, realm: str, algorithm: str, nonce_secret: bytes, bind: str = "") -> float | None:
    """Issue time of a nonce we signed for this realm and algorithm, or None if it is not ours."""
    try:
        raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _NONCE_LAYOUT.size + _NONCE_MAC_BYTES:
        return None
    head, mac = raw[: _NONCE_LAYOUT.size], raw[_NONCE_LAYOUT.size :]
    if not hmac.compare_digest(mac, _nonce_mac(nonce_secret, head, realm, algorithm, bind)):
        return None
    return float(_NONCE_LAYOUT.unpack(head)[0])


def verify_authorization(
    header_value: str,
    method: str,
    password_lookup: Callable[[str], str | None],
    realm: str,
    nonce_secret: bytes,
    now: float,
    max_age: float = 300,
    *,
    request_uri: str | None = None,
    bind: str = "",
) -> VerifyResult:
    """Check an Authorization / Proxy-Authorization value against a challenge made by :func:`make_challenge`.

    ``request_uri``, when given, must equal the credentials' uri; ``bind`` must equal the one the nonce was made
    with. Accepts qop=auth and the legacy no-qop form. Replays (a reused nonce count) are the caller's to refuse:
    see :class:`NonceCounts`.
    """
    _check_secret(nonce_secret)

    def fail(reason: str, username: str | None = None, stale: bool = False) -> VerifyResult:
        return VerifyResult(False, username, stale, reason)

    try:
        params = parse_credentials(header_value)
    except DigestError as exc:
        return fail(str(exc))
    for required in ("username", "realm", "nonce", "uri", "response"):
        if required not in params:
            return fail(f"credentials lack the {required!r} parameter")
    username = params["username"]
    if params["realm"] != realm:
        return fail(f"realm {params['realm']!r} does not match {realm!r}", username)
    if request_uri is not None and params["uri"] != request_uri:
        return fail(f"digest uri {params['uri']!r} does not match the request URI", username)
    algorithm = _canonical_algorithm(params.get("algorithm", "MD5"))
    if algorithm is None:
        return fail(f"unsupported algorithm {params.get('algorithm')!r}", username)
    qop = params.get("qop", "").strip().lower() or None
    if qop not in (None, "auth"):
        return fail(f"qop {qop!r} was not offered (only auth)", username)
    cnonce, nc = params.get("cnonce"), params.get("nc")
    if qop is not None and (not cnonce or nc is None or not _NC.fullmatch(nc)):
        return fail("qop=auth needs a cnonce and an 8-hex-digit nc", username)
    if qop is None and _ALGORITHMS[algorithm][1]:
        return fail(f"algorithm {algorithm} needs qop=auth", username)

    issued = _nonce_issued_at(params["nonce"], realm, algorithm, bytes(nonce_secret), bind)
    if issued is None:
        return fail("nonce was not issued by us for this realm, algorithm and source", username)
    if issued > now + _CLOCK_SKEW_S:
        return fail("nonce is dated in the future", username)
    password = password_lookup(username)
    if password is None:
        return fail(f"unknown user {username!r}", username)
    expected = _compute_response(
        algorithm,
        username=username,
        realm=realm,
        password=password,
        method=method,
        uri=params["uri"],
        nonce=params["nonce"],
        cnonce=cnonce if qop else None,
        qop=qop,
        nc=nc if qop else None,
        body=b"",
    )
    if not hmac.compare_digest(expected.encode(), params["response"].strip().lower().encode("utf-8")):
        return fail("response does not match (wrong password or tampered request)", username)
    if now - issued > max_age:
        return fail(f"nonce expired ({now - issued:.0f} s old, max {max_age:.0f} s)", username, stale=True)
    return VerifyResult(True, username, False, "ok")
