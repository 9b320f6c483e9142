"""Who is calling, and whom they first called: caller identity and redirection from an INVITE's headers.

Identity (RFC 3325 P-Asserted-Identity, the older Remote-Party-ID, else From): an asserted identity is
believed only when the INVITE came from a trusted source (a configured trunk); from anyone else it is ignored
and From is used. ``Privacy: id`` (or ``user``/``header``, or RPID's ``privacy=full``) marks the identity private:
the application may still use the number (the network handed it to us, the terminating party) but must not
write it to logs or records.

Redirection (RFC 5806 Diversion, RFC 7044 History-Info): the number the caller originally dialled before the
call was forwarded to us, and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .headers import Headers, SipParseError, split_list
from .uri import NameAddr, parse_name_addr

Source = Literal["pai", "rpid", "from"]

ANONYMOUS = "anonymous"
_PRIVATE_VALUES = {"id", "user", "header", "full", "uri", "name"}


@dataclass(frozen=True)
class CallerIdentity:
    """The caller as we believe them: ``number`` (user part or tel: number), its ``source`` header."""

    number: str = ""
    display: str = ""
    source: Source = "from"
    private: bool = False

    @property
    def shown(self) -> str:
        """The number as logs and records may show it: ``anonymous`` when the caller asked for privacy."""
        return ANONYMOUS if self.private else self.number


@dataclass(frozen=True)
class Redirection:
    """Where the call was before it reached us: ``original_called`` (first target), the reason, each hop."""

    original_called: str = ""
    reason: str = ""
    hops: tuple[str, ...] = field(default_factory=tuple)  # diverting numbers, first redirection first

    def as_dict(self) -> dict[str, object]:
        return {"original_called": self.original_called, "reason": self.reason, "hops": list(self.hops)}


def uri_number(addr: NameAddr) -> str:
    """The user part of a sip: URI, the number of a tel: URI (without its parameters), else ''."""
    uri = addr.uri
    if uri.scheme.lower() == "tel" and uri.opaque is not None:
        return uri.opaque.split(";", 1)[0]
    return uri.user or ""


def _addresses(headers: Headers, name: str) -> list[NameAddr]:
    out: list[NameAddr] = []
    for raw in headers.get_all(name):
        for value in split_list(raw):
            try:
                out.append(parse_name_addr(value))
            except SipParseError:
                continue  # one unparseable entry does not hide the others
    return out


def _privacy(headers: Headers) -> bool:
    values = {v.strip().lower() for raw in headers.get_all("Privacy") for v in raw.replace(",", ";").split(";")}
    return bool(values & _PRIVATE_VALUES)


def _from_identity(headers: Headers, private: bool) -> CallerIdentity:
    found = _addresses(headers, "From")
    if not found:
        return CallerIdentity(private=private)
    addr = found[0]
    number = uri_number(addr)
    if number.lower() == ANONYMOUS or addr.uri.host.lower() == "anonymous.invalid":
        return CallerIdentity(number="", display=addr.display or "", private=True)
    return CallerIdentity(number=number, display=addr.display or "", source="from", private=private)


def caller_identity(headers: Headers, trusted: bool) -> CallerIdentity:
    """The caller of an INVITE with ``headers``; P-Asserted-Identity / Remote-Party-ID only when ``trusted``."""
    private = _privacy(headers)
    if trusted:
        asserted = [a for a in _addresses(headers, "P-Asserted-Identity") if uri_number(a)]
        if asserted:  # RFC 3325 §9.1: a sip: and a tel: value may both be present; prefer the tel: number
            tel = [a for a in asserted if a.uri.scheme.lower() == "tel"]
            best = (tel or asserted)[0]
            display = next((a.display for a in asserted if a.display), "")
            return CallerIdentity(uri_number(best), display, "pai", private)
        rpid = [a for a in _addresses(headers, "Remote-Party-ID") if uri_number(a)]
        if rpid:
            best = next((a for a in rpid if (a.params.get("party") or "calling").lower() == "calling"), rpid[0])
            rpid_private = (best.params.get("privacy") or "off").lower() in _PRIVATE_VALUES
            return CallerIdentity(uri_number(best), best.display or "", "rpid", private or rpid_private)
    return _from_identity(headers, private)


def redirection(headers: Headers) -> Redirection | None:
    """The redirection an INVITE carries, or None. History-Info's first entry (lowest index) is the original
    target; Diversion lists the latest redirection first, so its last value is the original called number."""
    history = _addresses(headers, "History-Info")
    if len(history) > 1:
        ordered = sorted(history, key=lambda a: _index_key(a.params.get("index")))
        reason = ""
        for entry in ordered[1:]:
            cause = entry.uri.params.get("cause")
            if cause:
                reason = _HI_CAUSES.get(cause, cause)
                break
        hops = tuple(uri_number(a) for a in ordered[:-1] if uri_number(a))
        return Redirection(uri_number(ordered[0]), reason, hops)
    diversion = _addresses(headers, "Diversion")
    if diversion:
        first = diversion[-1]
        hops = tuple(uri_number(a) for a in reversed(diversion) if uri_number(a))
        return Redirection(uri_number(first), (first.params.get("reason") or "").strip('"'), hops)
    return None


def _index_key(index: str | None) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in (index or "1").split("."))
    except ValueError:
        return (1 << 30,)


# RFC 4458 cause values in History-Info, named like Diversion's reasons (RFC 5806 §4.2).
_HI_CAUSES = {"302": "unconditional", "486": "user-busy", "408": "no-answer", "480": "unavailable",
              "487": "deflection", "404": "unknown", "503": "out-of-service"}
