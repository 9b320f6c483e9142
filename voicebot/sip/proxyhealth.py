"""Health of a trunk's proxies and the order outbound INVITEs try them in. Pure logic, no I/O.

A proxy is presumed up until ``down_after`` consecutive failed checks (OPTIONS timeout, transport error, 408 or
503) mark it down; ``up_after`` consecutive answered checks mark it up again. Calls try the healthy proxies in
their configured order; when none is healthy they try them all (the checks may be stale; better a slow call
than none).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

__all__ = ["ProxyState", "TrunkProxies", "TrunkRoutes", "check_failed"]

FAILING_STATUSES = frozenset({408, 503})


def check_failed(status: int | None) -> bool:
    """Whether an OPTIONS outcome counts against the proxy: no answer (None), 408 or 503. Any other final
    response (even 404 or 405) shows the proxy is there and processing requests."""
    return status is None or status in FAILING_STATUSES


@dataclass
class ProxyState:
    uri: str
    up: bool = True
    failures: int = 0  # consecutive
    successes: int = 0  # consecutive
    checks: int = 0
    last_result: str = ""  # "200 OK", "timeout", "connection refused"...
    changed_at: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {"uri": self.uri, "up": self.up, "consecutive_failures": self.failures, "checks": self.checks,
                "last_result": self.last_result, "changed_at": self.changed_at}


ChangeListener = Callable[[str, ProxyState], None]  # trunk name, the proxy's new state


class TrunkProxies:
    """One trunk's proxies in configured order, with their health."""

    def __init__(self, trunk: str, domain: str, proxies: Sequence[str], *, down_after: int = 3,
                 up_after: int = 1, invite_timeout_s: float = 4.0) -> None:
        if not proxies:
            raise ValueError(f"trunk {trunk!r} has no proxy")
        if down_after < 1 or up_after < 1:
            raise ValueError("down_after and up_after must be at least 1")
        self.trunk = trunk
        self.domain = domain  # host[:port] of the URIs this trunk carries (sip:<number>@<domain>)
        self.proxies = [ProxyState(uri) for uri in proxies]
        self.down_after = down_after
        self.up_after = up_after
        self.invite_timeout_s = invite_timeout_s  # an INVITE nothing answers this long goes to the next proxy
        self.listeners: list[ChangeListener] = []

    def state(self, uri: str) -> ProxyState:
        for proxy in self.proxies:
            if proxy.uri == uri:
                return proxy
        raise KeyError(uri)

    def record(self, uri: str, failed: bool, result: str, now: float) -> bool:
        """One check's outcome; True when it changed the proxy's up/down state (listeners are told)."""
        proxy = self.state(uri)
        proxy.checks += 1
        proxy.last_result = result
        if failed:
            proxy.failures += 1
            proxy.successes = 0
            flip = proxy.up and proxy.failures >= self.down_after
        else:
            proxy.successes += 1
            proxy.failures = 0
            flip = not proxy.up and proxy.successes >= self.up_after
        if flip:
            proxy.up = not proxy.up
            proxy.changed_at = now
            for listener in list(self.listeners):
                listener(self.trunk, proxy)
        return flip

    def candidates(self) -> list[str]:
        """The proxies a call tries, in order: the healthy ones, else all of them."""
        healthy = [p.uri for p in self.proxies if p.up]
        return healthy or [p.uri for p in self.proxies]

    def snapshot(self) -> dict[str, object]:
        return {"trunk": self.trunk, "domain": self.domain, "proxies": [p.as_dict() for p in self.proxies],
                "healthy": sum(p.up for p in self.proxies)}


class TrunkRoutes:
    """Every trunk's proxies, found by trunk name or by the domain of the URI dialled."""

    def __init__(self, trunks: Iterable[TrunkProxies] = ()) -> None:
        self.trunks: dict[str, TrunkProxies] = {t.trunk: t for t in trunks}

    def add(self, trunk: TrunkProxies) -> None:
        self.trunks[trunk.trunk] = trunk

    def for_domain(self, host_port: str) -> TrunkProxies | None:
        """The trunk whose domain is ``host_port`` (host, or host:port, of a Request-URI)."""
        return next((t for t in self.trunks.values() if t.domain.lower() == host_port.lower()), None)

    def snapshot(self) -> list[dict[str, object]]:
        return [t.snapshot() for t in self.trunks.values()]

    def prometheus(self) -> str:
        """``voicebot_trunk_proxy_up{trunk,proxy}`` gauges and check counters for /metrics."""
        if not self.trunks:
            return ""
        lines = ["# HELP voicebot_trunk_proxy_up 1 while the trunk proxy answers its OPTIONS health checks",
                 "# TYPE voicebot_trunk_proxy_up gauge"]
        checks = ["# HELP voicebot_trunk_proxy_checks_total OPTIONS health checks sent to the trunk proxy",
                  "# TYPE voicebot_trunk_proxy_checks_total counter"]
        for trunk in self.trunks.values():
            for proxy in trunk.proxies:
                labels = f'trunk="{_label(trunk.trunk)}",proxy="{_label(proxy.uri)}"'
                lines.append(f"voicebot_trunk_proxy_up{{{labels}}} {int(proxy.up)}")
                checks.append(f"voicebot_trunk_proxy_checks_total{{{labels}}} {proxy.checks}")
        return "\n".join(lines + checks) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
