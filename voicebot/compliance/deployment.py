"""Deployment checks for `voicebot validate --config`: what a regulated deployment must not run with.

Warnings, each at the config's file:line: the node's TLS certificate close to expiry or its private key readable
by other users, and a trunk that carries finance or healthcare calls (a dialplan a finance/healthcare compliance
policy applies to) without SIP over TLS or without required SRTP — card numbers and health data keyed or said
over clear RTP on a public network fail PCI DSS / HIPAA-style rules. Errors (expired certificate, key not matching,
unreadable files) are the config loader's own (voicebot.config.TlsConfig). And queue announcements further apart
than a policy's `quality.max_hold_s` (voicebot.compliance.timing): every wait would be flagged as one without news.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Iterable

from voicebot.compliance.lint import Policy, policies_for
from voicebot.config import ServerConfig, TrunkConfig
from voicebot.sip.tls import CertificateError, certificate_not_after
from voicebot.sip.uri import parse_uri
from voicebot.yamlsrc import LineMap, Loc, YamlSourceError

REGULATED_POLICIES = ("finance", "healthcare")
EXPIRY_WARNING_DAYS = 30


def deployment_warnings(config: ServerConfig, lines: LineMap, path: str, policies: Iterable[Policy],
                        now: dt.datetime | None = None) -> list[YamlSourceError]:
    """Every warning for ``config`` (loaded from ``path`` with source positions ``lines``)."""
    def at(loc: Loc, message: str, hint: str) -> YamlSourceError:
        line, column = lines.line_for(loc)
        return YamlSourceError(path, line, column, message, hint)

    warnings = [at(loc, message, hint) for loc, message, hint in certificate_findings(config, now)]
    policies = list(policies)
    warnings += [at(loc, message, hint) for loc, message, hint in trunk_findings(config, policies)]
    warnings += [at(loc, message, hint) for loc, message, hint in announcement_findings(config, policies)]
    return warnings


def certificate_findings(config: ServerConfig, now: dt.datetime | None = None) -> list[tuple[Loc, str, str]]:
    """The node certificate expiring within EXPIRY_WARNING_DAYS; a private key other users may read."""
    tls = config.listen.tls
    if tls is None:
        return []
    found: list[tuple[Loc, str, str]] = []
    moment = now or dt.datetime.now(dt.timezone.utc)
    try:
        not_after = certificate_not_after(tls.cert_file)
    except CertificateError:
        not_after = None  # the loader reported it already
    if not_after is not None and not_after - moment < dt.timedelta(days=EXPIRY_WARNING_DAYS):
        days = max(0, (not_after - moment).days)
        found.append((("listen", "tls", "cert_file"),
                      f"certificate {tls.cert_file} expires on {not_after:%Y-%m-%d} (in {days} day(s))",
                      "renew it before then: TLS trunks refuse an expired certificate"))
    try:
        mode = os.stat(tls.key_file).st_mode
    except OSError:
        mode = 0
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        found.append((("listen", "tls", "key_file"),
                      f"private key {tls.key_file} is accessible to other users (mode {stat.S_IMODE(mode):o})",
                      f"chmod 600 {tls.key_file}"))
    return found


def regulated_dialplans(config: ServerConfig, trunk: TrunkConfig, policies: list[Policy]) -> dict[str, str]:
    """Dialplans ``trunk`` can deliver calls to (its DIDs, routing.dids, the default) that a finance or
    healthcare policy applies to: dialplan -> policy."""
    reachable = {*trunk.dids.values(), *config.routing.dids.values(), config.routing.default_dialplan}
    found: dict[str, str] = {}
    for name in sorted(reachable):
        regulated = [p.policy for p in policies_for(name, policies) if p.policy in REGULATED_POLICIES]
        if regulated:
            found[name] = regulated[0]
    return found


def trunk_uses_tls(config: ServerConfig, trunk: TrunkConfig) -> bool:
    """Signalling with ``trunk`` is encrypted: we listen on TLS and its registrar/proxy is sips: or transport=tls."""
    if "tls" not in config.listen.transports:
        return False
    uri = parse_uri(str(trunk.outbound_proxy or trunk.registrar))
    return uri.scheme.lower() == "sips" or (uri.params.get("transport") or "").lower() == "tls"


def trunk_findings(config: ServerConfig, policies: list[Policy]) -> list[tuple[Loc, str, str]]:
    """A trunk carrying finance/healthcare calls without TLS or without required SRTP."""
    found: list[tuple[Loc, str, str]] = []
    for index, trunk in enumerate(config.trunks):
        regulated = regulated_dialplans(config, trunk, policies)
        if not regulated:
            continue
        what = ", ".join(f"{name} ({policy})" for name, policy in regulated.items())
        if not trunk_uses_tls(config, trunk):
            found.append((("trunks", index), f"trunk {trunk.name!r} carries {what} calls without SIP over TLS",
                          "give it a sips: registrar (or ;transport=tls) and add tls to listen.transports"))
        encryption = config.media_encryption_for(trunk)
        if encryption != "required":
            found.append((("trunks", index), f"trunk {trunk.name!r} carries {what} calls without required SRTP "
                          f"(media_encryption: {encryption})",
                          "set media_encryption: required on the trunk: card numbers and health data must not "
                          "travel in clear RTP"))
    return found


def announcement_findings(config: ServerConfig, policies: list[Policy]) -> list[tuple[Loc, str, str]]:
    """Queues announcing no more often than a policy's max_hold_s: the live check would flag every wait."""
    queues = config.queues
    if not queues.enabled:
        return []
    return [(("queues", "announce_every_s"),
             f"queues announce every {queues.announce_every_s:g} s, but policy {p.policy!r} flags a wait of more "
             f"than {p.quality.max_hold_s:g} s without an announcement: every wait in its dialplans would be flagged",
             f"set queues.announce_every_s below {p.quality.max_hold_s:g} (or raise quality.max_hold_s in "
             f"policies/{p.policy}.yaml)")
            for p in policies if p.quality is not None and queues.announce_every_s >= p.quality.max_hold_s]
