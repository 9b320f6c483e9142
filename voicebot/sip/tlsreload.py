"""Certificate rotation without downtime: on reload (SIGHUP) the node re-reads listen.tls's certificate, key and CA
files. New TLS connections show the new certificate; established connections, and the calls on them, keep the
session they have. A certificate or key that cannot serve (expired, key not matching, unreadable, not PEM) is
refused with an error naming the file, and the previous one keeps serving — as a broken dialplan is on reload."""

from __future__ import annotations

import hashlib
import logging
from typing import Literal

from .tls import CertificateError, TlsSettings
from .ua import UserAgent

log = logging.getLogger("voicebot.sip.tls")

Outcome = Literal["reloaded", "unchanged", "refused"]


def files_digest(settings: TlsSettings) -> str:
    """A digest of the certificate, key and CA files' contents (an unreadable file counts as its error)."""
    digest = hashlib.sha256()
    for path in (settings.cert_file, settings.key_file, settings.ca_file):
        if path is None:
            continue
        try:
            with open(path, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
        except OSError as exc:
            digest.update(f"unreadable {path}: {exc}".encode())
    return digest.hexdigest()


class CertificateRotation:
    """Reloads the UA's TLS identity when its files changed; remembers what is serving."""

    def __init__(self, ua: UserAgent, settings: TlsSettings) -> None:
        self.ua = ua
        self.settings = settings
        self.serving = files_digest(settings)  # what the UA loaded at start (the config loader checked it)

    def reload(self) -> Outcome:
        """Swap in the files' certificate for new connections, or log why not; runs on the event loop."""
        digest = files_digest(self.settings)
        if digest == self.serving:
            log.info("tls certificate unchanged", extra={"fields": {"cert_file": self.settings.cert_file}})
            return "unchanged"
        previous = self._serving_serial()
        try:
            identity = self.ua.reload_tls()
        except CertificateError as exc:
            log.error("tls certificate reload refused; the previous certificate keeps serving", extra={"fields": {
                "file": getattr(self.settings, exc.field, self.settings.cert_file), "error": str(exc),
                "serving_serial": previous}})
            return "refused"
        self.serving = digest
        log.info("tls certificate reloaded", extra={"fields": {
            "file": self.settings.cert_file, "serial": _hex(identity.serial), "previous_serial": previous,
            "subject": identity.subject, "not_after": identity.not_after.isoformat()}})
        return "reloaded"

    def _serving_serial(self) -> str | None:
        return _hex(self.ua.tls_identity.serial) if self.ua.tls_identity is not None else None


def _hex(serial: int) -> str:
    """A serial number as `openssl x509 -serial` prints it (upper-case hex)."""
    return f"{serial:X}"
