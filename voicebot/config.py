"""The server configuration (sip_config/voicebot.yaml): schema, semantic checks and loading with file:line errors.

    config = load_server_config("sip_config/voicebot.yaml")     # raises yamlsrc.ConfigErrors
    password = resolve_trunk_password(config.trunks[0])          # raises MissingSecretError

Every model forbids unknown fields (a typo is an error with a suggestion, never silently ignored) and is
frozen. Secrets never live in the file: a trunk names the environment variable holding its password.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from voicebot.sip.certnames import names_match
from voicebot.sip.targets import TargetPattern as TransferTargetPattern
from voicebot.sip.targets import TargetPatternError, target_allowed
from voicebot.yamlsrc import (
    ConfigErrors,
    LocatedValueError,
    YamlSourceError,
    format_loc,
    load_yaml,
    validate,
)

__all__ = [
    "AclConfig",
    "CodecConfig",
    "ListenConfig",
    "LimitsConfig",
    "LogConfig",
    "MissingSecretError",
    "PromptsConfig",
    "RoutingConfig",
    "RtpConfig",
    "ServerConfig",
    "TransferConfig",
    "TlsConfig",
    "TrunkConfig",
    "TrunkHealthConfig",
    "load_server_config",
    "resolve_trunk_password",
]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# ------------------------------------------------------------------------------------ value validators

_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
_SIP_URI = re.compile(
    r"(?P<scheme>sips?):"
    r"(?:(?P<user>[^@;?\s]+)@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:;?\s\[\]@]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<params>;[^?\s]*)?"
    r"(?:\?(?P<headers>\S*))?"
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_DID = re.compile(r"\+?[0-9]{1,32}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[A-Z][a-z]{3})?(?:-[A-Z]{2}|-[0-9]{3})?")


def _check_host(value: str) -> str:
    """An IP literal or a DNS name."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(value) or value.rstrip(".").rsplit(".", 1)[-1].isdigit():
        raise ValueError(f"{value!r} is not an IP address or host name")
    return value


def _check_advertise_url(value: str) -> str:
    """An http(s) base URL other nodes can reach (voicebot.api.forward)."""
    from voicebot.api.forward import check_advertise_url

    return check_advertise_url(value)


def _check_sip_uri(value: str) -> str:
    """A sip: or sips: URI with a valid host and port."""
    match = _SIP_URI.fullmatch(value)
    if match is None:
        raise LocatedValueError(
            f"{value!r} is not a SIP URI", hint="write it as sip:host[:port], e.g. sip:sip.example.com"
        )
    host = match["host"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise LocatedValueError(f"{value!r} has an invalid IPv6 host {host}") from None
    else:
        try:
            _check_host(host)
        except ValueError:
            raise LocatedValueError(f"{value!r} has an invalid host {host!r}") from None
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        raise LocatedValueError(f"{value!r} has port {match['port']} outside 1..65535")
    return value


def _check_target_pattern(value: str) -> str:
    """A SIP URI pattern (voicebot.sip.targets): scheme, user, host, port and parameters matched separately."""
    try:
        TransferTargetPattern.parse(value)
    except TargetPatternError as exc:
        raise LocatedValueError(
            str(exc),
            hint="start with sip: or sips:, e.g. sip:*@agents.example.com or sip:+1555*@10.0.0.5:*",
        ) from None
    return value


def _to_network(value: Any) -> Any:
    """Parse a CIDR (or a bare address, meaning a single host) into an ip_network."""
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return value
    if not isinstance(value, str):
        raise LocatedValueError(
            f"expected a network such as '10.0.0.0/8', got {value!r}", hint="quote it as text"
        )
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            loose = ipaddress.ip_network(value.strip(), strict=False)
            raise LocatedValueError(
                f"{value!r} has host bits set", hint=f"did you mean {str(loose)!r}?"
            ) from None
        raise LocatedValueError(
            f"{value!r} is not an IP network", hint="write it as address/prefix, e.g. 192.0.2.0/24"
        ) from None


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise LocatedValueError(
            f"{value!r} is not an environment variable name",
            hint="use letters, digits and underscores, e.g. VOICEBOT_TRUNK_PASSWORD",
        )
    return value


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise LocatedValueError(
            f"{value!r} is not a valid name",
            hint="use letters, digits, '_', '.', '-' (at most 64), e.g. bank_hotline",
        )
    return value


def _check_language(value: str) -> str:
    if not _LANGUAGE.fullmatch(value):
        raise LocatedValueError(
            f"{value!r} is not a language tag", hint="use a BCP 47 tag such as en-US or zh-CN"
        )
    return value


def _check_did_map(value: Mapping[str, str]) -> Mapping[str, str]:
    for did in value:
        if not _DID.fullmatch(did):
            raise LocatedValueError(
                f"{did!r} is not a DID",
                loc=(did,),
                hint="write the number as digits with an optional leading '+', quoted: '+15551234567'",
            )
    return value


def _check_unique(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise LocatedValueError(f"{value!r} is listed twice", loc=(index,))
        seen.add(value)
    return values


def _check_even(value: int) -> int:
    if value % 2:
        raise LocatedValueError(
            f"{value} is odd", hint=f"RTP uses even ports (RTCP takes the odd one above); use {value - 1} or {value + 1}"
        )
    return value


Host = Annotated[str, AfterValidator(_check_host)]
SipUri = Annotated[str, AfterValidator(_check_sip_uri)]
TargetPattern = Annotated[str, AfterValidator(_check_target_pattern)]
Network = Annotated[IpNetwork, BeforeValidator(_to_network)]
EnvName = Annotated[str, AfterValidator(_check_env_name)]
Name = Annotated[str, AfterValidator(_check_name)]
DidMap = Annotated[dict[str, Name], AfterValidator(_check_did_map)]
Port = Annotated[int, Field(ge=1024, le=65535)]
MediaEncryption = Literal["none", "optional", "required"]
"""SRTP policy (SDES, RFC 4568): none = plain RTP only; optional = SRTP when the peer offers/accepts a usable
a=crypto, else RTP; required = SRTP or 488 Not Acceptable Here (outbound: RTP/SAVP offers)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ------------------------------------------------------------------------------------------- sections


class TlsConfig(_Section):
    """The node's TLS identity and policy (SIP over TLS, RFC 3261 §26.2; checked when the config loads)."""

    cert_file: str = Field(min_length=1, description="PEM certificate chain (ours first), e.g. /etc/voicebot/sip.crt")
    key_file: str = Field(min_length=1, description="PEM private key of cert_file")
    ca_file: str | None = Field(None, min_length=1, description="PEM CAs trusted for peers (client certificates of "
                                "trunks; servers we call); default: the system's CA store")
    client_auth: Literal["none", "optional", "required"] = Field(
        "none", description="mutual TLS: ask connecting trunks for a certificate signed by ca_file")
    verify_server: bool = Field(True, description="outbound: verify the server's certificate chain and host name")
    min_version: Literal["1.2", "1.3"] = Field("1.2", description="lowest TLS version accepted")

    @model_validator(mode="after")
    def _usable(self) -> TlsConfig:
        from voicebot.sip.tls import CertificateError, check_ca_file, check_certificate

        try:
            check_certificate(self.cert_file, self.key_file)
        except CertificateError as exc:
            raise LocatedValueError(str(exc), loc=(exc.field,), hint="point cert_file/key_file at a current PEM "
                                    "certificate and its private key (openssl x509 -noout -dates -in FILE)") from None
        if self.ca_file is not None and not os.path.isfile(self.ca_file):
            raise LocatedValueError(f"CA file {self.ca_file} does not exist", loc=("ca_file",))
        if self.ca_file is not None:
            try:
                check_ca_file(self.ca_file)
            except CertificateError as exc:
                raise LocatedValueError(str(exc), loc=("ca_file",), hint="a PEM bundle of the CAs that sign the "
                                        "trunks' certificates") from None
        if self.client_auth != "none" and self.ca_file is None:
            raise LocatedValueError("client_auth needs ca_file: the CAs that sign the trunks' certificates",
                                    loc=("client_auth",))
        return self


class StreamConfig(_Section):
    """TCP and TLS connections: limits and keep-alive (RFC 5626 CRLF pings are answered on every connection)."""

    idle_timeout_s: float = Field(600, gt=0, le=86_400, description="close a connection silent this long")
    max_connections: int = Field(4096, ge=1, le=1_000_000, description="open TCP/TLS connections in all")
    max_connections_per_source: int = Field(32, ge=1, le=100_000, description="open connections per source address")
    connect_timeout_s: float = Field(5, gt=0, le=120, description="outbound connect (and TLS handshake) limit")
    handshake_timeout_s: float = Field(10, gt=0, le=120, description="inbound TLS handshake limit")


class SessionTimerConfig(_Section):
    """RFC 4028 session timers on the calls we answer: a call whose peer vanished without BYE ends by itself."""

    enabled: bool = Field(True, description="grant session timers (Session-Expires) and enforce them")
    expires_s: int = Field(1800, ge=2, le=86_400, description="the longest session interval we grant, and the one "
                           "we ask for when the caller asks none")
    min_se_s: int = Field(90, ge=2, le=86_400, description="Min-SE: a smaller Session-Expires is answered 422 "
                          "(RFC 4028 recommends at least 90; lower only for tests)")

    @model_validator(mode="after")
    def _ordered(self) -> SessionTimerConfig:
        if self.min_se_s > self.expires_s:
            raise LocatedValueError(f"min_se_s {self.min_se_s} exceeds expires_s {self.expires_s}",
                                    loc=("min_se_s",), hint="the smallest interval cannot exceed the largest")
        return self


class ListenConfig(_Section):
    """Where the SIP server listens."""

    host: Host = Field("127.0.0.1", description="address to bind, e.g. 127.0.0.1, 0.0.0.0 or ::")
    port: int = Field(5060, ge=0, le=65535, description="SIP port for UDP and TCP; 0 picks a free port (tests)")
    transports: Annotated[list[Literal["udp", "tcp", "tls"]], AfterValidator(_check_unique)] = Field(
        default_factory=lambda: ["udp"], min_length=1, description="any of udp, tcp, tls"
    )
    tls_port: int = Field(5061, ge=0, le=65535, description="SIP over TLS port (sips:); 0 picks a free port")
    tls: TlsConfig | None = Field(None, description="certificate and key; required when transports has tls")
    stream: StreamConfig = Field(default_factory=StreamConfig)
    session_timers: SessionTimerConfig = Field(default_factory=SessionTimerConfig)
    public_host: Host | None = Field(
        None, description="address put in Contact and SDP when behind NAT (default: the bound address)"
    )
    receive_buffer_bytes: int = Field(
        4 * 1024 * 1024, ge=65_536, le=256 * 1024 * 1024,
        description="SO_RCVBUF of the SIP socket, so bursts of call setups are not dropped by the kernel "
                    "(beyond net.core.rmem_max only with CAP_NET_ADMIN; the size granted is logged)",
    )

    @model_validator(mode="after")
    def _tls_configured(self) -> ListenConfig:
        if "tls" in self.transports and self.tls is None:
            raise LocatedValueError("transport tls needs a certificate", loc=("transports",),
                                    hint="add listen.tls: {cert_file: ..., key_file: ...}")
        if self.tls_port and self.tls_port == self.port and "tls" in self.transports and "tcp" in self.transports:
            raise LocatedValueError(f"tls_port {self.tls_port} is the TCP port", loc=("tls_port",),
                                    hint="SIP over TLS needs its own port, usually 5061")
        return self


class RtpConfig(_Section):
    """The UDP port range for media; each call takes an even RTP port and the odd RTCP port above it."""

    port_start: Annotated[Port, AfterValidator(_check_even)] = 20000
    port_end: Annotated[Port, AfterValidator(_check_even)] = 30000

    @model_validator(mode="after")
    def _ordered(self) -> RtpConfig:
        if self.port_start >= self.port_end:
            raise LocatedValueError(
                f"port_end {self.port_end} must be above port_start {self.port_start}",
                loc=("port_end",),
                hint="the range needs room for at least one call",
            )
        return self

    @property
    def call_capacity(self) -> int:
        """How many RTP/RTCP port pairs the range holds."""
        return (self.port_end - self.port_start) // 2


class CodecConfig(_Section):
    """Audio codecs offered and accepted, most preferred first."""

    preference: Annotated[list[Literal["PCMU", "PCMA"]], AfterValidator(_check_unique)] = Field(
        default_factory=lambda: ["PCMU", "PCMA"], min_length=1, description="any of PCMU, PCMA"
    )
    dtmf_payload_type: int = Field(101, ge=96, le=127, description="RTP payload type for RFC 4733 telephone-event")


class DigestUser(_Section):
    username: str = Field(min_length=1)
    password_env: EnvName = Field(description="environment variable holding the password")


class LoginLockoutConfig(_Section):
    """Bans after repeated failed digest logins (agent phones' REGISTER): per source address and per user."""

    failures_per_source: int = Field(10, ge=1, le=10_000, description="failed logins from one address in the "
                                     "window that ban the address")
    failures_per_user: int = Field(30, ge=1, le=10_000, description="failed logins of one user (any address) in "
                                   "the window that ban the user")
    window_s: float = Field(300, gt=0, le=86_400, description="how long a failure counts")
    ban_s: float = Field(900, gt=0, le=86_400, description="first ban; each further ban of the same key doubles")
    max_ban_s: float = Field(86_400, gt=0, le=604_800, description="longest ban")

    @model_validator(mode="after")
    def _ban_within_max(self) -> LoginLockoutConfig:
        if self.ban_s > self.max_ban_s:
            raise LocatedValueError(f"ban_s {self.ban_s:g} exceeds max_ban_s {self.max_ban_s:g}", loc=("ban_s",),
                                    hint=f"lower it to at most {self.max_ban_s:g}")
        return self


class AuthConfig(_Section):
    """Digest authentication asked of callers that are not trunks (trunks are trusted by their allow_from)."""

    challenge_non_trunk: bool = Field(False, description="answer INVITEs from non-trunk sources with 401")
    realm: str = Field("voicebot", min_length=1)
    users: list[DigestUser] = Field(default_factory=list)
    lockout: LoginLockoutConfig = Field(default_factory=LoginLockoutConfig)


class AclConfig(_Section):
    """Sources allowed to send INVITEs when they match no trunk."""

    allow: list[Network] = Field(
        default_factory=lambda: [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")],
        description="CIDR networks, e.g. 192.0.2.0/24",
    )

    def allows(self, source: str | IpAddress) -> bool:
        """Whether `source` lies in one of the allowed networks."""
        return _in_networks(source, self.allow)


class TrunkHealthConfig(_Section):
    """OPTIONS health checks to each of a trunk's proxies and failover between them."""

    options: bool = Field(True, description="ping each proxy with OPTIONS (off: every proxy is presumed up)")
    interval_s: float = Field(30, ge=0.1, le=3600, description="seconds between two OPTIONS to one proxy")
    timeout_s: float = Field(5, ge=0.05, le=60, description="an OPTIONS unanswered this long is a failure")
    down_after: int = Field(3, ge=1, le=100, description="consecutive failures (timeout, transport error, 408, "
                            "503) that mark a proxy down")
    up_after: int = Field(1, ge=1, le=100, description="consecutive answered checks that mark it up again")
    invite_timeout_s: float = Field(4, ge=0.05, le=60, description="an INVITE with no response at all this long "
                                    "goes to the next proxy")

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> TrunkHealthConfig:
        if self.timeout_s > self.interval_s:
            raise LocatedValueError(f"timeout_s ({self.timeout_s:g}) is longer than interval_s ({self.interval_s:g})",
                                    loc=("timeout_s",), hint="a check must end before the next one starts")
        return self


class TrunkConfig(_Section):
    """A SIP trunk (carrier): where to register, which sources to trust, which DIDs it delivers."""

    yaml_field_hints: ClassVar[dict[str, str]] = {
        "password": "passwords never go in the file: set 'password_env: SOME_VARIABLE' and export "
        "SOME_VARIABLE in the server's environment",
        "secret": "secrets never go in the file: name an environment variable with password_env",
    }

    name: Name = Field(description="unique trunk name, e.g. carrier_a")
    registrar: SipUri = Field(description="registrar SIP URI, e.g. sip:sip.example.com")
    username: str | None = Field(None, min_length=1, description="digest user name")
    password_env: EnvName | None = Field(
        None, description="name of the environment variable holding the digest password"
    )
    register_enabled: bool = Field(True, alias="register", description="send REGISTER to the registrar")
    expires: int = Field(3600, ge=60, le=86400, description="registration lifetime in seconds (60..86400)")
    allow_from: list[Network] = Field(
        default_factory=list, description="source networks whose INVITEs belong to this trunk"
    )
    dids: DidMap = Field(default_factory=dict, description="DID -> dialplan name")
    outbound_proxy: SipUri | None = None
    proxies: list[SipUri] = Field(default_factory=list, description="proxies outbound calls go through, tried in "
                                  "order: the first healthy one, the next on 503, timeout or transport error")
    health: TrunkHealthConfig = Field(default_factory=TrunkHealthConfig)
    media_encryption: MediaEncryption | None = Field(
        None, description="SRTP policy for this trunk's calls: none, optional or required (default: the global "
                          "media_encryption)")
    tls_names: list[Annotated[str, Field(min_length=1, pattern=r"^[^*]+$")]] = Field(
        default_factory=list, description="mutual TLS: names (certificate common name or subjectAltName) the "
        "trunk's TLS connections prove; when set, a call from allow_from that did not come over TLS with a "
        "certificate for one of them is refused with 403 (needs listen.tls.client_auth). Names are exact (no "
        "wildcards; a certificate with subjectAltName is named by it alone, IP addresses compare as addresses); "
        "its allow_from may "
        "overlap no other trunk's (a validation error: calls go to the first trunk covering their source)")

    @model_validator(mode="after")
    def _credentials(self) -> TrunkConfig:
        if self.register_enabled:
            for field in ("username", "password_env"):
                if getattr(self, field) is None:
                    raise LocatedValueError(
                        f"{field} is required when register is true",
                        loc=(field,),
                        hint="add it, or set 'register: false' for an IP-authenticated trunk",
                    )
        return self

    @model_validator(mode="after")
    def _proxy_list(self) -> TrunkConfig:
        if self.proxies and self.outbound_proxy is not None:
            raise LocatedValueError("outbound_proxy and proxies are both set", loc=("outbound_proxy",),
                                    hint="list every proxy under proxies (the first is tried first)")
        seen: dict[str, int] = {}
        for index, proxy in enumerate(self.proxies):
            if proxy.lower() in seen:
                raise LocatedValueError(f"proxy {proxy!r} is listed twice", loc=("proxies", index),
                                        hint=f"proxies[{seen[proxy.lower()]}] already has it")
            seen[proxy.lower()] = index
        return self

    @property
    def domain(self) -> str:
        """host[:port] of the URIs this trunk's calls go to: the registrar's."""
        match = _SIP_URI.fullmatch(self.registrar)
        assert match is not None  # validated
        return match["host"] + (f":{match['port']}" if match["port"] else "")

    def matches_source(self, source: str | IpAddress) -> bool:
        """Whether a request from `source` comes from this trunk."""
        return _in_networks(source, self.allow_from)

    def tls_refusal(self, transport: str, peer_names: Sequence[str]) -> str | None:
        """Why a call from this trunk's sources is refused under ``tls_names`` (None: accepted). ``peer_names``
        are the names of the verified client certificate the call's connection showed (none: empty)."""
        if not self.tls_names:
            return None
        if transport != "tls":
            return f"trunk {self.name!r} takes calls over mutual TLS only; this one came over {transport}"
        if not peer_names:
            return f"trunk {self.name!r} needs a client certificate; the connection showed none"
        if not names_match(self.tls_names, tuple(peer_names)):
            return f"certificate of {peer_names[0]!r} is not one of trunk {self.name!r}'s tls_names"
        return None


class RoutingConfig(_Section):
    """Which dialplan answers a call."""

    default_dialplan: Name = Field("demo", description="dialplan for calls whose DID is not mapped")
    dids: DidMap = Field(default_factory=dict, description="DID -> dialplan for peers that are not trunks")


class TransferConfig(_Section):
    """Where calls may be transferred (REFER or blind transfer); nothing else is reachable."""

    allowed_targets: list[TargetPattern] = Field(
        default_factory=list,
        description="SIP URI patterns matched on the parsed URI, e.g. sip:*@agents.example.com or "
                    "sip:+1555*@10.0.0.5:*; URI parameters (maddr, transport...) only when listed",
    )

    def allows(self, target: str) -> bool:
        """Whether the SIP URI `target` matches one of the allowed patterns (scheme, user, host, port, params)."""
        return target_allowed(target, [TransferTargetPattern.parse(p) for p in self.allowed_targets])


class LimitsConfig(_Section):
    """Protection against overload and abuse."""

    max_calls: int = Field(500, ge=1, le=100_000)
    max_calls_per_source: int = Field(50, ge=1)
    max_message_bytes: int = Field(65535, ge=1500, le=65535, description="largest SIP message accepted")
    max_headers: int = Field(128, ge=16, le=1024)
    invite_rate_per_source_per_s: float = Field(20, gt=0, le=10_000)
    browser_calls_per_source: int = Field(3, ge=1, description="browser calls (the public call page) at once "
                                                                "from one address; they count in max_calls too")
    browser_offers_per_source_per_min: int = Field(12, ge=1, le=10_000,
                                                   description="browser call attempts a minute from one address")
    browser_connect_timeout_s: float = Field(10, gt=0, le=120, description="a browser call whose media does not "
                                                                          "connect within this is closed")
    max_pending_setups: int = Field(100, ge=1, le=100_000, description="INVITEs not yet answered above which new "
                                    "ones get 503 + Retry-After")
    max_media_lag_ms: float = Field(60, gt=0, le=10_000, description="media clock lag above which new INVITEs get "
                                    "503 + Retry-After (calls in progress keep their media on time)")

    @model_validator(mode="after")
    def _per_source_within_total(self) -> LimitsConfig:
        if self.max_calls_per_source > self.max_calls:
            raise LocatedValueError(
                f"max_calls_per_source {self.max_calls_per_source} exceeds max_calls {self.max_calls}",
                loc=("max_calls_per_source",),
                hint=f"lower it to at most {self.max_calls}",
            )
        return self


class PromptsConfig(_Section):
    """What the demo IVR says and how it collects digits."""

    greeting: str = Field(
        "Welcome to voicebot. Please enter your account number followed by the hash key.", min_length=1
    )
    goodbye: str = Field("Thank you for calling. Goodbye.", min_length=1)
    digit_timeout_s: float = Field(5, gt=0, le=60)
    max_digits: int = Field(16, ge=1, le=64)
    language: Annotated[str, AfterValidator(_check_language)] = "en-US"


class NetworkConfig(_Section):
    """Where this node may send signalling and media (guards against reflection via crafted Contact/SDP)."""

    egress_allow: list[Network] = Field(
        default_factory=lambda: [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")],
        description="CIDR networks SIP and RTP may be sent to; tests use loopback only",
    )
    media_trust: Literal["signalling_source", "sdp"] = Field(
        "signalling_source",
        description="signalling_source: stream to an SDP address at once only when it is the SIP request's source "
                    "host, else only after the caller's RTP arrives (latching; stops RTP reflection); "
                    "sdp: trust any SDP address egress_allow permits",
    )


class WebhookEgressConfig(_Section):
    """Where webhooks may go: allow networks minus deny networks; a more specific allow opens a denied one."""

    allow: list[Network] = Field(
        default_factory=lambda: [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")],
        description="CIDR networks webhooks may reach")
    deny: list[Network] = Field(
        default_factory=lambda: [ipaddress.ip_network(n) for n in _webhook_default_deny()],
        description="refused unless a narrower allow entry opens them: loopback, link-local (cloud metadata "
                    "169.254.169.254), reserved")


def _webhook_default_deny() -> tuple[str, ...]:
    from voicebot.dialplan.webhook_policy import DEFAULT_DENY

    return DEFAULT_DENY


class RecordingConfig(_Section):
    """Per-call recordings (caller audio) written as the call goes."""

    enabled: bool = False
    directory: str = Field("var/recordings", min_length=1, description="where WAV files are written")
    retention_days: int = Field(90, ge=1, le=3650, description="`voicebot retention` deletes older recordings")


class RecordsConfig(_Section):
    """Call records as events, written as the call goes (voicebot/records): a crash loses at most the last event."""

    enabled: bool = True
    path: str = Field("var/records/calls.sqlite3", min_length=1,
                      description="SQLite file of the call records (with postgres: this node's local outbox)")
    store: Literal["sqlite", "postgres"] = Field(
        "sqlite", description="sqlite (embedded) or postgres (several nodes write to one database)")
    postgres_dsn_env: str = Field("VOICEBOT_RECORDS_DSN", pattern=r"^[A-Z_][A-Z0-9_]*$",
                                  description="environment variable holding the PostgreSQL connection string")


class CasesConfig(_Section):
    """Cases after calls (issue 19): one per call that reached an agent or ended unresolved; notifications go to a
    webhook (an SMS gateway plugs in there) under webhook_egress; header secrets as ${ENV} references."""

    enabled: bool = True
    dispositions_file: str = Field("sip_config/dispositions.yaml", min_length=1,
                                   description="disposition codes per industry (dialplan)")
    follow_up_queue: str | None = Field(None, description="queue follow-up callbacks join (default: the queue "
                                        "the call was in, else the first queue)")
    webhook_url: str | None = Field(None, pattern=r"^https?://", description="POSTed on case create/update")
    webhook_headers: dict[str, str] = Field(default_factory=dict,
                                            description='e.g. {Authorization: "Bearer ${SMS_GATEWAY_TOKEN}"}')


class SpeechConfig(_Section):
    """Speech engines for dialplan calls (worker processes load the models once)."""

    asr_model: Literal["base", "tiny.en"] = Field("base", description="Whisper model: base (en+zh) or tiny.en")
    workers: int = Field(0, ge=0, le=64, description="speech worker processes; 0 = one per core")
    asr_window_s: float | None = Field(None, ge=1.0, le=30.0, description=(
        "Whisper window for English (10 = a quarter of the 30 s window's ASR CPU); unset = the model's measured "
        "default: 10 s for base (as accurate as 30 s), 30 s for tiny.en (less accurate on 10 s)"))


class QueuesConfig(_Section):
    """Human agent queues (ACD): agents, queues, where the shared state lives, how agents are rung."""

    enabled: bool = True
    agents_file: str = Field("sip_config/agents.yaml", min_length=1)
    queues_file: str = Field("sip_config/queues.yaml", min_length=1)
    store: Literal["memory", "redis"] = Field("memory", description="redis shares queues across nodes")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="used when store is redis")
    namespace: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+$", description="Redis key namespace")
    node_id: str | None = Field(None, description="unique per node (default: host name + SIP port)")
    heartbeat_s: float = Field(2, gt=0, le=60, description="redis store: renew this node's heartbeat this often")
    node_ttl_s: float = Field(6, gt=0, le=300, description="redis store: a node silent this long is lost; "
                              "survivors re-offer its waiting callers as callbacks")
    ring_timeout_s: float = Field(20, gt=0, le=120, description="ring an agent this long before trying another")
    announce_every_s: float = Field(30, ge=5, le=600, description="position/wait announcements while queued")
    hold_audio: str | None = Field(None, description="WAV played while queued (default: a generated melody)")
    callback_allowed: list[str] = Field(default_factory=lambda: ["+*", "0*", "[1-9]*"],
                                        description="fnmatch patterns a callback number must match")
    callback_uri_template: str | None = Field(
        None, description='where callbacks are dialled, e.g. "sip:{number}@carrier.example" (default: first trunk)')

    @model_validator(mode="after")
    def _heartbeat_within_ttl(self) -> QueuesConfig:
        if self.heartbeat_s >= self.node_ttl_s:
            raise LocatedValueError(f"heartbeat_s ({self.heartbeat_s:g}) must be shorter than node_ttl_s "
                                    f"({self.node_ttl_s:g})", loc=("heartbeat_s",),
                                    hint="e.g. heartbeat_s: 2 with node_ttl_s: 6 (three beats may be missed)")
        return self


class ApiConfig(_Section):
    """The admin/agent HTTP API, agent desktop and dashboard (tokens: `voicebot token create`)."""

    enabled: bool = True
    host: Host = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535, description="0 picks a free port (tests)")
    tokens_file: str | None = Field(None, description="token store (default: ~/.config/voicebot/tokens.json)")
    audit_log: str = Field("var/audit/audit.jsonl", min_length=1,
                           description="append-only, hash-chained audit log (logins, context/recording access, reloads)")
    allowed_origins: list[str] = Field(default_factory=list, description="CORS origins allowed (none by default)")
    media_host: Host | None = Field(None, description="IP address browser (WebRTC) media binds; default: the "
                                                      "API host; 0.0.0.0 or :: binds every interface")
    advertise_url: Annotated[str, AfterValidator(_check_advertise_url)] | None = Field(
        None, description="this node's API base URL for other nodes (forwarded browser answers), e.g. "
                          "http://10.0.0.5:8080 (default: http://<host>:<port>; listen.public_host for a wildcard host)")


class LogConfig(_Section):
    level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value),
    ] = "INFO"
    json_lines: bool = Field(True, alias="json", description="one JSON object per log line")
    keyed_digits: Literal["masked", "shown"] = Field(
        "masked", description="DTMF digits in log fields: masked as [DIGITS n] (default) or shown (lab use only)"
    )


class ServerConfig(_Section):
    """Everything `voicebot serve` needs, as written in sip_config/voicebot.yaml."""

    listen: ListenConfig = Field(default_factory=ListenConfig)
    rtp: RtpConfig = Field(default_factory=RtpConfig)
    codecs: CodecConfig = Field(default_factory=CodecConfig)
    acl: AclConfig = Field(default_factory=AclConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    trunks: list[TrunkConfig] = Field(default_factory=list)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    transfer: TransferConfig = Field(default_factory=TransferConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    records: RecordsConfig = Field(default_factory=RecordsConfig)
    cases: CasesConfig = Field(default_factory=CasesConfig)
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    dialplans_dir: str = Field("dialplans", min_length=1, description="directory of <name>.yaml dialplans")
    nlu_dir: str = Field("nlu_models", min_length=1, description="directory of NLU domains")
    knowledge_dir: str = Field("knowledge", min_length=1,
                               description="knowledge articles (<collection>/<lang>/*.md) for answer: and /kb/search")
    knowledge_cache_dir: str | None = Field(
        None, min_length=1, description="where articles' sentence vectors are kept between starts, so a restart "
        "encodes only changed articles (default: $VOICEBOT_CACHE/knowledge)")
    webhooks: dict[str, str] = Field(default_factory=dict, description="webhook name -> http(s) URL")
    webhook_egress: WebhookEgressConfig = Field(default_factory=WebhookEgressConfig)
    demo_backend: bool = Field(False, description="serve the built-in demo backend (sample data) for webhooks not "
                               "configured: for demos only; off, a dialplan webhook without a URL is refused")
    demo_today: dt.date | None = Field(None, description="the date the demo backend's handlers see (repayment-day "
                                       "surge, upcoming appointments), e.g. 2026-11-10; default: the real date")
    speech: "SpeechConfig" = Field(default_factory=lambda: SpeechConfig())
    answer_delay_s: float = Field(0, ge=0, le=30, description="ring (180) this long before answering")
    media_encryption: MediaEncryption = Field(
        "optional", description="SRTP policy for calls from non-trunk sources and the default for trunks and agents: "
                                "none, optional (SRTP when offered; outbound offers RTP/AVP with a=crypto) or "
                                "required (SRTP or 488; outbound offers RTP/SAVP)")
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    queues: QueuesConfig = Field(default_factory=QueuesConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    shutdown_grace_s: float = Field(30, ge=0, le=3600, description="seconds calls may finish after SIGTERM")
    log: LogConfig = Field(default_factory=LogConfig)

    @model_validator(mode="after")
    def _webhook_destinations(self) -> ServerConfig:
        from voicebot.dialplan.webhook_policy import WebhookEgress

        egress = WebhookEgress(self.webhook_egress.allow, self.webhook_egress.deny)
        for name, url in self.webhooks.items():
            reason = egress.refuses_url_statically(url)
            if reason is not None:
                raise LocatedValueError(f"webhook {name!r} destination refused: {reason}", loc=("webhooks", name),
                                        hint="open the network with webhook_egress.allow if it is really meant")
        from voicebot.dialplan.webhook_policy import literal_secret

        url = self.cases.webhook_url
        reason = egress.refuses_url_statically(url) if url else None
        if reason is not None:
            raise LocatedValueError(f"cases webhook destination refused: {reason}", loc=("cases", "webhook_url"),
                                    hint="open the network with webhook_egress.allow if it is really meant")
        for header, value in self.cases.webhook_headers.items():
            secret = literal_secret(header, value)
            if secret is not None:
                raise LocatedValueError(f"cases webhook {secret}", loc=("cases", "webhook_headers", header),
                                        hint='write it as an environment reference, e.g. "Bearer ${SMS_TOKEN}"')
        return self

    @model_validator(mode="after")
    def _trunk_tls_names_need_mutual_tls(self) -> ServerConfig:
        tls = self.listen.tls
        for index, trunk in enumerate(self.trunks):
            if trunk.tls_names and ("tls" not in self.listen.transports or tls is None or tls.client_auth == "none"):
                why = "listen.transports has no tls" if "tls" not in self.listen.transports or tls is None else \
                    "listen.tls.client_auth is none"
                raise LocatedValueError(
                    f"trunk {trunk.name!r} has tls_names but the node asks no client certificate ({why})",
                    loc=("trunks", index, "tls_names"),
                    hint="listen on tls with listen.tls.client_auth: required and the trunks' CA in ca_file")
        return self

    @model_validator(mode="after")
    def _tls_trunks_not_shadowed(self) -> ServerConfig:
        """A call belongs to the first trunk whose allow_from covers its source: a trunk with tls_names must share
        no address with another trunk, or the other one's looser rules (no tls_names, other names) would apply to
        some of its sources, or its own to the other's. A validation error, not a guess at the meant trunk."""
        for later, trunk in enumerate(self.trunks):
            for earlier in range(later):
                other = self.trunks[earlier]
                if not (trunk.tls_names or other.tls_names):
                    continue
                for at, network in enumerate(trunk.allow_from):
                    clash = next((n for n in other.allow_from if n.version == network.version and n.overlaps(network)),
                                 None)
                    if clash is not None:
                        strict = trunk if trunk.tls_names else other
                        raise LocatedValueError(
                            f"trunk {trunk.name!r} allow_from {network} overlaps trunk {other.name!r}'s {clash} "
                            f"(trunks[{earlier}]); calls from there would be matched to {other.name!r} and "
                            f"trunk {strict.name!r}'s tls_names would not decide",
                            loc=("trunks", later, "allow_from", at),
                            hint="give a trunk with tls_names source addresses no other trunk lists")
        return self

    @model_validator(mode="after")
    def _unique_names_and_dids(self) -> ServerConfig:
        first_trunk: dict[str, int] = {}
        for index, trunk in enumerate(self.trunks):
            if trunk.name in first_trunk:
                raise LocatedValueError(
                    f"trunk name {trunk.name!r} is used twice",
                    loc=("trunks", index, "name"),
                    hint=f"trunks[{first_trunk[trunk.name]}] already has it; give each trunk its own name",
                )
            first_trunk[trunk.name] = index
        where_mapped: dict[str, str] = {}
        for did_loc, did in self._did_locations():
            if did in where_mapped:
                raise LocatedValueError(
                    f"DID {did!r} is mapped twice",
                    loc=did_loc,
                    hint=f"it is already mapped in {where_mapped[did]}; a DID routes to one dialplan",
                )
            where_mapped[did] = format_loc(did_loc[:-1])
        return self

    def _did_locations(self) -> list[tuple[tuple[Any, ...], str]]:
        found: list[tuple[tuple[Any, ...], str]] = []
        for index, trunk in enumerate(self.trunks):
            found.extend((("trunks", index, "dids", did), did) for did in trunk.dids)
        found.extend((("routing", "dids", did), did) for did in self.routing.dids)
        return found

    def trunk_for_source(self, source: str | IpAddress) -> TrunkConfig | None:
        """The first trunk whose allow_from covers `source`."""
        return next((trunk for trunk in self.trunks if trunk.matches_source(source)), None)

    def media_encryption_for(self, trunk: TrunkConfig | None) -> MediaEncryption:
        """The SRTP policy for a call on `trunk` (None: not a trunk): the trunk's own, else the global one."""
        if trunk is not None and trunk.media_encryption is not None:
            return trunk.media_encryption
        return self.media_encryption

    def dialplan_for(self, did: str, trunk: TrunkConfig | None = None) -> str:
        """The dialplan for a call to `did`: the trunk's mapping, then routing.dids, then the default."""
        if trunk is not None and did in trunk.dids:
            return trunk.dids[did]
        return self.routing.dids.get(did, self.routing.default_dialplan)


def _in_networks(source: str | IpAddress, networks: list[IpNetwork]) -> bool:
    address = ipaddress.ip_address(source) if isinstance(source, str) else source
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


# -------------------------------------------------------------------------------------------- loading


def load_server_config(path: str | Path) -> ServerConfig:
    """Load and validate a server config file; every problem raises as ConfigErrors with file:line."""
    try:
        data, lines = load_yaml(path)
    except YamlSourceError as error:
        raise ConfigErrors([error]) from None
    if data is None:  # an empty file means all defaults
        data = {}
    return validate(ServerConfig, data, lines, path)


class MissingSecretError(Exception):
    """A trunk's password environment variable is not set (or the trunk names none)."""


def resolve_trunk_password(trunk: TrunkConfig, environ: Mapping[str, str] = os.environ) -> str:
    """The trunk's digest password, read from the environment variable named by password_env."""
    if trunk.password_env is None:
        raise MissingSecretError(
            f"trunk {trunk.name!r} has no password_env: add 'password_env: VARIABLE' to it in the config"
        )
    password = environ.get(trunk.password_env)
    if not password:
        state = "is empty" if password == "" else "is not set"
        raise MissingSecretError(
            f"trunk {trunk.name!r}: environment variable {trunk.password_env} {state}; "
            f"export {trunk.password_env}=<password> before starting voicebot"
        )
    return password
