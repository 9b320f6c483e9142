"""The names a verified peer certificate proves, and how they compare (RFC 6125): pure, no I/O.

* subjectAltName wins: when the certificate has DNS or IP Address entries, its subject common name is ignored
  (RFC 6125 §6.4.4); only a certificate without them is named by its common name.
* IP addresses compare as addresses (``::1`` = ``0:0::1``, ``::ffff:10.0.0.2`` = ``10.0.0.2``); DNS names without
  case and without a trailing dot.
* Wildcards (``*.example.com``) prove no name here: a trunk or an alias must be named exactly, and one wildcard
  certificate held by many hosts must not stand for any of them. tls_names entries may not contain ``*``.
"""

from __future__ import annotations

import ipaddress
from typing import Any


def canonical_name(name: str) -> str:
    """One spelling per name: an IP address in its compressed form (IPv4-mapped IPv6 as IPv4), else lower case
    without brackets or a trailing dot."""
    text = name.strip().strip("[]")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text.lower().rstrip(".")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def certificate_names(cert: dict[str, Any]) -> tuple[str, ...]:
    """Canonical names a verified certificate (``SSLObject.getpeercert()``) proves: its subjectAltName DNS names
    and IP addresses, else (none of those) its subject common name; wildcard names left out; each once."""
    alt = [str(value) for kind, value in cert.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
    names = alt or [str(value) for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    return tuple(dict.fromkeys(canonical_name(name) for name in names if "*" not in name))


def names_match(wanted: list[str] | tuple[str, ...], proved: tuple[str, ...] | list[str]) -> bool:
    """Whether any of ``proved`` is one of ``wanted`` (both compared canonically)."""
    return bool({canonical_name(n) for n in wanted} & {canonical_name(n) for n in proved})
