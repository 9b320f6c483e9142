"""Command-line options of `voicebot call` and their validation into a CallPlan (pure logic)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

DTMF_CHARACTERS = frozenset("0123456789*#ABCDabcd")


class UsageError(ValueError):
    """Bad command-line input, reported with a specific message and exit code 2."""


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `voicebot call` options to `parser`."""
    parser.add_argument("uri", help="SIP URI to call, e.g. sip:100@127.0.0.1:5060; sips:… or ;transport=tls calls "
                        "over TLS, ;transport=tcp over TCP")
    parser.add_argument("--play", type=Path, help="WAV (any rate/channels) to play into the call once")
    parser.add_argument("--record", type=Path, help="write what the softphone hears to this WAV")
    parser.add_argument("--dtmf", default="", help="DTMF digits to send after answer, e.g. 123#")
    parser.add_argument("--dtmf-mode", choices=("rfc4733", "info"), default="rfc4733",
                        help="RFC 4733 telephone-events (default) or SIP INFO application/dtmf-relay")
    parser.add_argument("--dtmf-delay", type=float, default=1.0, metavar="SEC",
                        help="seconds after answer before sending --dtmf (default 1.0)")
    parser.add_argument("--duration", type=float, metavar="SEC",
                        help="hang up this many seconds after answer (default: wait for the remote)")
    parser.add_argument("--hangup-after-dtmf", type=float, metavar="SEC",
                        help="hang up this many seconds after the last DTMF digit was sent")
    parser.add_argument("--header", action="append", default=[], metavar="'Name: value'",
                        help="extra header on the INVITE (repeatable)")
    parser.add_argument("--local-port", type=int, default=0, metavar="N",
                        help="local SIP UDP port (default: any free port)")
    parser.add_argument("--bind", default="127.0.0.1", help="local address for SIP and RTP (default 127.0.0.1)")
    parser.add_argument("--username", help="digest auth user name")
    parser.add_argument("--password", help="digest auth password")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SEC",
                        help="give up and hang up after this many seconds in total (default 60)")
    parser.add_argument("--srtp", choices=("off", "optional", "mandatory"), default="off",
                        help="SRTP with SDES keys: off (default), optional (RTP/AVP with a=crypto) or mandatory "
                             "(RTP/SAVP)")
    parser.add_argument("--tls-ca", type=Path, metavar="PEM",
                        help="CAs the server's TLS certificate must chain to (default: the system's)")
    parser.add_argument("--tls-cert", type=Path, metavar="PEM", help="client certificate shown over TLS (mutual TLS)")
    parser.add_argument("--tls-key", type=Path, metavar="PEM", help="private key of --tls-cert")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--verbose", action="store_true", help="show pjsua logs and SIP traffic on stderr")


@dataclass(frozen=True)
class CallPlan:
    """Validated call options."""

    uri: str
    play: Path | None
    record: Path | None
    digits: str
    dtmf_info: bool
    dtmf_delay: float
    duration: float | None
    hangup_after_dtmf: float | None
    headers: tuple[tuple[str, str], ...]
    local_port: int
    bind: str
    username: str | None
    password: str | None
    timeout: float
    verbose: bool
    srtp: str = "off"
    transport: str = "udp"  # from the URI: sips: or ;transport=tls -> tls, ;transport=tcp -> tcp
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None


def uri_transport(uri: str) -> str:
    """The transport a call to ``uri`` takes (RFC 3261 §19.1.1): ``sips:`` → tls, else its ``transport=``
    parameter (udp, tcp or tls; default udp). Raises UsageError for another transport."""
    if uri.lower().startswith("sips:"):
        return "tls"
    for param in uri.split(">")[0].split("?")[0].split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "transport":
            value = value.strip().lower()
            if value not in ("udp", "tcp", "tls"):
                raise UsageError(f"transport={value} is not supported (udp, tcp or tls)")
            return value
    return "udp"


def parse_header(text: str) -> tuple[str, str]:
    """Split 'Name: value' into (name, value); reject malformed or multi-line headers."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or any(c.isspace() for c in name):
        raise UsageError(f"--header must look like 'Name: value', got {text!r}")
    if "\r" in text or "\n" in text:
        raise UsageError(f"--header must be a single line, got {text!r}")
    return name, value


def plan_from_args(args: argparse.Namespace) -> CallPlan:
    """Validate parsed arguments into a CallPlan, raising UsageError with a specific message."""
    uri = str(args.uri).strip()
    if not uri.lower().startswith(("sip:", "sips:")):
        raise UsageError(f"URI must start with 'sip:' or 'sips:', got {uri!r}")
    transport = uri_transport(uri)
    tls_ca, tls_cert, tls_key = (getattr(args, name, None) for name in ("tls_ca", "tls_cert", "tls_key"))
    if (tls_ca or tls_cert or tls_key) and transport != "tls":
        raise UsageError("--tls-ca/--tls-cert/--tls-key need a TLS URI (sips: or ;transport=tls)")
    if (tls_cert is None) != (tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    for option, path in (("--tls-ca", tls_ca), ("--tls-cert", tls_cert), ("--tls-key", tls_key)):
        if path is not None and not path.is_file():
            raise UsageError(f"{option} file not found: {path}")
    bad_digits = sorted(set(args.dtmf) - DTMF_CHARACTERS)
    if bad_digits:
        raise UsageError(f"--dtmf accepts 0-9 * # A-D, got invalid {''.join(bad_digits)!r}")
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {args.timeout}")
    for option, value in (("--duration", args.duration), ("--dtmf-delay", args.dtmf_delay),
                          ("--hangup-after-dtmf", args.hangup_after_dtmf)):
        if value is not None and value < 0:
            raise UsageError(f"{option} must not be negative, got {value}")
    if args.duration is not None and args.duration >= args.timeout:
        raise UsageError(f"--duration ({args.duration}) must be shorter than --timeout ({args.timeout})")
    if args.hangup_after_dtmf is not None and not args.dtmf:
        raise UsageError("--hangup-after-dtmf needs --dtmf")
    if not 0 <= args.local_port <= 65535:
        raise UsageError(f"--local-port must be 0-65535, got {args.local_port}")
    if (args.username is None) != (args.password is None):
        raise UsageError("--username and --password go together")
    if args.play is not None and not args.play.is_file():
        raise UsageError(f"--play file not found: {args.play}")
    if args.record is not None:
        if args.record.suffix.lower() != ".wav" or args.record.is_dir():
            raise UsageError(f"--record must name a .wav file, got {str(args.record)!r}")
        if not args.record.parent.resolve().is_dir():
            raise UsageError(f"--record directory does not exist: {args.record.parent}")
    return CallPlan(
        uri=uri, play=args.play, record=args.record, digits=args.dtmf.upper(),
        dtmf_info=args.dtmf_mode == "info", dtmf_delay=args.dtmf_delay, duration=args.duration,
        hangup_after_dtmf=args.hangup_after_dtmf,
        headers=tuple(parse_header(h) for h in args.header), local_port=args.local_port,
        bind=args.bind, username=args.username, password=args.password, timeout=args.timeout,
        verbose=args.verbose, srtp=getattr(args, "srtp", "off"), transport=transport, tls_ca=tls_ca,
        tls_cert=tls_cert, tls_key=tls_key,
    )
