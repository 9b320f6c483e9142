"""SDES: the SDP ``a=crypto`` attribute (RFC 4568) that carries SRTP master keys in offer/answer. Pure logic.

    a=crypto:<tag> <crypto-suite> inline:<base64 key||salt>[|<lifetime>][|<MKI>:<length>][;inline:...] [<params>]

Usable here (what libsrtp through pylibsrtp can run): AES_CM_128_HMAC_SHA1_80 and AES_CM_128_HMAC_SHA1_32, one
master key without MKI, session parameters KDR=0, WSH=<window> (64..32768) and FEC_ORDER. Anything else parses
(so it can be skipped with a reason) but is not usable. Master keys never appear in a repr or an error message.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field

__all__ = [
    "CryptoAttribute",
    "SdesError",
    "SUITES",
    "new_crypto",
    "parse_crypto",
    "unusable_reason",
]

SUITES: dict[str, int] = {"AES_CM_128_HMAC_SHA1_80": 30, "AES_CM_128_HMAC_SHA1_32": 30}
"""Crypto suites we run -> master key + salt length in bytes (16 + 14)."""

_TAG = re.compile(r"[0-9]{1,9}")
_SUITE = re.compile(r"[A-Za-z0-9_]{1,64}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_LIFETIME = re.compile(r"(?:2\^([0-9]{1,2})|([0-9]{1,20}))")
_MKI = re.compile(r"([0-9]{1,10}):([0-9]{1,3})")
_WINDOW = re.compile(r"WSH=([0-9]{1,6})")


class SdesError(ValueError):
    """A malformed ``a=crypto`` value; the message names the problem but never contains key material."""


@dataclass(frozen=True)
class CryptoAttribute:
    """One ``a=crypto`` line. ``key`` is master key || master salt (raw bytes); further keys are ``extra_keys``."""

    tag: int
    suite: str
    key: bytes = field(repr=False)
    lifetime: int | None = None
    mki: tuple[int, int] | None = None  # (value, length in bytes)
    extra_keys: int = 0
    session_params: tuple[str, ...] = ()

    @property
    def window_size(self) -> int | None:
        """The replay window from a WSH= session parameter, else None (libsrtp's default, 128)."""
        for param in self.session_params:
            match = _WINDOW.fullmatch(param)
            if match:
                return int(match.group(1))
        return None

    def serialize(self) -> str:
        """The attribute value (after ``a=crypto:``): one inline key, no lifetime/MKI (we never send them)."""
        text = f"{self.tag} {self.suite} inline:{base64.b64encode(self.key).decode('ascii')}"
        return " ".join((text, *self.session_params))


def parse_crypto(value: str) -> CryptoAttribute:
    """Parse an ``a=crypto`` value; raise :class:`SdesError` when it is malformed (the key is never quoted)."""
    parts = value.split()
    if len(parts) < 3:
        raise SdesError("a=crypto needs '<tag> <crypto-suite> inline:<key>'")
    tag_text, suite, key_params, *session = parts
    if not _TAG.fullmatch(tag_text):
        raise SdesError(f"a=crypto tag {tag_text[:12]!r} is not a number of 1-9 digits")
    if not _SUITE.fullmatch(suite):
        raise SdesError("a=crypto crypto-suite is not a name")
    keys = key_params.split(";")
    key, lifetime, mki = _parse_key_param(keys[0])
    for extra in keys[1:]:
        _parse_key_param(extra)  # checked for form only; several keys need MKIs, which we do not run
    return CryptoAttribute(int(tag_text), suite, key, lifetime, mki, len(keys) - 1, tuple(session))


def _parse_key_param(text: str) -> tuple[bytes, int | None, tuple[int, int] | None]:
    method, colon, info = text.partition(":")
    if method != "inline" or not colon:
        raise SdesError("a=crypto key method must be 'inline:' (RFC 4568 §6.1)")
    key_text, *rest = info.split("|")
    if not _BASE64.fullmatch(key_text):
        raise SdesError("a=crypto key is not base64")
    try:
        key = base64.b64decode(key_text + "=" * (-len(key_text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SdesError("a=crypto key is not valid base64") from None
    lifetime: int | None = None
    mki: tuple[int, int] | None = None
    if len(rest) > 2:
        raise SdesError("a=crypto key has more than a lifetime and an MKI after it")
    for item in rest:
        mki_match = _MKI.fullmatch(item)
        life_match = _LIFETIME.fullmatch(item)
        if mki_match and mki is None:
            mki = (int(mki_match.group(1)), int(mki_match.group(2)))
            if not 1 <= mki[1] <= 128:
                raise SdesError(f"a=crypto MKI length {mki[1]} outside 1..128")
        elif life_match and lifetime is None and mki is None:
            lifetime = 2 ** int(life_match.group(1)) if life_match.group(1) else int(life_match.group(2))
        else:
            raise SdesError(f"a=crypto key parameter {item[:20]!r} is neither a lifetime nor MKI:length")
    return key, lifetime, mki


def unusable_reason(crypto: CryptoAttribute) -> str | None:
    """Why we cannot run this crypto line (None: usable)."""
    length = SUITES.get(crypto.suite)
    if length is None:
        return f"crypto-suite {crypto.suite} is not supported (we run {', '.join(SUITES)})"
    if len(crypto.key) != length:
        return f"{crypto.suite} needs a {length}-byte key and salt, got {len(crypto.key)} bytes"
    if crypto.mki is not None or crypto.extra_keys:
        return "keys with an MKI (or several keys) are not supported"
    if crypto.lifetime is not None and crypto.lifetime < 2**16:
        return f"key lifetime {crypto.lifetime} packets is too short (no rekeying by lifetime)"
    for param in crypto.session_params:
        window = _WINDOW.fullmatch(param)
        if window:
            if not 64 <= int(window.group(1)) <= 32768:
                return f"replay window {window.group(1)} outside 64..32768"
        elif param != "KDR=0" and not param.startswith("FEC_ORDER="):
            return f"session parameter {param[:32]!r} is not supported"
    return None


def new_crypto(tag: int, suite: str) -> CryptoAttribute:
    """A crypto line with a fresh random master key and salt for ``suite``."""
    length = SUITES.get(suite)
    if length is None:
        raise ValueError(f"crypto-suite {suite!r} is not supported; use one of {', '.join(SUITES)}")
    return CryptoAttribute(tag, suite, secrets.token_bytes(length))
