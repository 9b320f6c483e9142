"""TLS for SIP (RFC 3261 §26.2, RFC 5630): ``ssl`` contexts for the listener and for outbound connections,
and the certificate checks the configuration runs before the server starts."""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass
from typing import Any, Literal

from cryptography import x509

from .certnames import certificate_names

ClientAuth = Literal["none", "optional", "required"]
MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class CertificateError(ValueError):
    """A certificate or key file that cannot serve: the message says which file and why; ``field`` is
    ``cert_file`` or ``key_file``."""

    def __init__(self, message: str, field: str = "cert_file") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class TlsSettings:
    """Where the node's certificate and key are, whom it trusts, and how strict it is."""

    cert_file: str
    key_file: str
    ca_file: str | None = None  # peers' CAs (client certificates inbound, servers outbound); None: system store
    client_auth: ClientAuth = "none"  # mutual TLS for trunks connecting to us
    verify_server: bool = True  # outbound: certificate chain and host name (RFC 5922)
    min_version: str = "1.2"


def check_certificate(cert_file: str, key_file: str, now: dt.datetime | None = None) -> None:
    """Raise CertificateError unless ``cert_file`` is a PEM certificate valid now and ``key_file`` its key."""
    try:
        with open(cert_file, "rb") as handle:
            pem = handle.read()
    except OSError as exc:
        raise CertificateError(f"cannot read certificate {cert_file}: {exc.strerror or exc}") from None
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise CertificateError(f"{cert_file} is not a PEM certificate") from None
    moment = now or dt.datetime.now(dt.timezone.utc)
    if cert.not_valid_after_utc < moment:
        raise CertificateError(f"certificate {cert_file} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    if cert.not_valid_before_utc > moment:
        raise CertificateError(f"certificate {cert_file} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError:
        raise CertificateError(f"cannot read key {key_file}: no such file", "key_file") from None
    except ssl.SSLError as exc:
        reason = "the key does not match the certificate" if "KEY_VALUES_MISMATCH" in str(exc) else exc.reason
        raise CertificateError(f"{key_file}: {reason or exc}", "key_file") from None
    except OSError as exc:
        raise CertificateError(f"cannot read key {key_file}: {exc.strerror or exc}", "key_file") from None


def certificate_not_after(cert_file: str) -> dt.datetime:
    """When the (first) certificate of ``cert_file`` expires; raises CertificateError when it cannot be read."""
    try:
        with open(cert_file, "rb") as handle:
            return x509.load_pem_x509_certificate(handle.read()).not_valid_after_utc
    except OSError as exc:
        raise CertificateError(f"cannot read certificate {cert_file}: {exc.strerror or exc}") from None
    except ValueError:
        raise CertificateError(f"{cert_file} is not a PEM certificate") from None


def check_ca_file(ca_file: str) -> None:
    """Raise CertificateError (field ``ca_file``) unless ``ca_file`` is readable and holds PEM certificates."""
    try:
        with open(ca_file, "rb") as handle:
            pem = handle.read()
    except OSError as exc:
        raise CertificateError(f"cannot read CA file {ca_file}: {exc.strerror or exc}", "ca_file") from None
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        certificates = []
    if not certificates:
        raise CertificateError(f"CA file {ca_file} holds no PEM certificate", "ca_file")


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """The listener's context: our certificate, TLS ≥ min_version, client certificates as ``client_auth`` says."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_VERSIONS[settings.min_version]
    context.load_cert_chain(settings.cert_file, settings.key_file)
    if settings.client_auth != "none":
        context.verify_mode = ssl.CERT_REQUIRED if settings.client_auth == "required" else ssl.CERT_OPTIONAL
        if settings.ca_file:
            context.load_verify_locations(settings.ca_file)
        else:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    return context


def client_context(settings: TlsSettings | None) -> ssl.SSLContext:
    """Outbound: verify the server's chain and host name; present our certificate (mutual TLS) when we have one."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                         cafile=settings.ca_file if settings is not None else None)
    context.minimum_version = MIN_VERSIONS[settings.min_version if settings is not None else "1.2"]
    if settings is not None:
        context.load_cert_chain(settings.cert_file, settings.key_file)
        if not settings.verify_server:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    return context


@dataclass(frozen=True)
class TlsIdentity:
    """What a node shows and trusts over TLS, loaded together from TlsSettings' files: the listener's and the
    outbound contexts, and the certificate's serial and expiry for the log."""

    server: ssl.SSLContext
    client: ssl.SSLContext
    serial: int
    not_after: dt.datetime
    subject: str


def load_identity(settings: TlsSettings, now: dt.datetime | None = None) -> TlsIdentity:
    """Check and load ``settings``' certificate, key and CA files (the config loader's checks: expiry, key match,
    readable, PEM); raises CertificateError naming the file at fault."""
    check_certificate(settings.cert_file, settings.key_file, now)
    if settings.ca_file is not None:
        check_ca_file(settings.ca_file)
    try:
        server, client = server_context(settings), client_context(settings)
    except (ssl.SSLError, OSError) as exc:  # changed again since the check, or a CA file OpenSSL refuses
        raise CertificateError(f"cannot load {settings.cert_file}, {settings.key_file}"
                               f"{', ' + settings.ca_file if settings.ca_file else ''}: {exc}") from None
    with open(settings.cert_file, "rb") as handle:
        cert = x509.load_pem_x509_certificate(handle.read())
    return TlsIdentity(server, client, cert.serial_number, cert.not_valid_after_utc, cert.subject.rfc4514_string())


def peer_subject(ssl_object: ssl.SSLObject | None) -> str | None:
    """The common name of a verified peer certificate (mutual TLS), for the log."""
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    if not cert:
        return None
    subject: Any = cert.get("subject", ())
    for rdn in subject:
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def peer_names(ssl_object: ssl.SSLObject | None) -> tuple[str, ...]:
    """The names of the peer's verified certificate (mutual TLS); empty when it showed none."""
    cert = ssl_object.getpeercert() if ssl_object is not None else None
    return certificate_names(cert) if cert else ()


class TlsSession:
    """Server-side TLS over memory BIOs (no socket): bytes from the peer in, plaintext and bytes to send out.

    The listener runs TLS itself rather than through the event loop's ``ssl=``, so a failed handshake (plain
    text on the TLS port, an untrusted client certificate) is seen here and logged with its reason.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(self._in, self._out, server_side=True)
        self.established = False
        self.peer_closed = False  # the peer sent close_notify: answer with ours (see shutdown) and close
        self._pending_alert = b""

    def receive(self, data: bytes) -> tuple[bytes, bytes]:
        """Feed bytes from the peer; returns (plaintext for the application, bytes to send back).
        Raises ssl.SSLError when the handshake or a record fails."""
        self._in.write(data)
        plain = bytearray()
        if not self.established:
            try:
                self.ssl_object.do_handshake()
                self.established = True
            except ssl.SSLWantReadError:
                return b"", self._out.read()
            except ssl.SSLError:
                self._pending_alert = self._out.read()
                raise
        while True:
            try:
                chunk = self.ssl_object.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.peer_closed = True
                break
            if not chunk:  # close_notify: the memory-BIO read reports it as end of data
                self.peer_closed = True
                break
            plain += chunk
        return bytes(plain), self._out.read()

    def send(self, data: bytes) -> bytes:
        """Encrypt ``data``; the bytes to write on the socket."""
        self.ssl_object.write(data)
        return self._out.read()

    def shutdown(self) -> bytes:
        """Our close_notify (peers such as asyncio wait for it before they release the connection)."""
        try:
            self.ssl_object.unwrap()
        except ssl.SSLError:
            pass
        return self._out.read()

    def alert(self) -> bytes:
        """The TLS alert to send after a failed handshake (may be empty)."""
        return self._pending_alert
