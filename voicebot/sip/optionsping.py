"""OPTIONS health checks (RFC 3261 §11) to every proxy of the outbound trunks, feeding voicebot.sip.proxyhealth.

Each proxy is pinged every ``interval_s``; no final response within ``timeout_s``, a transport error, 408 or 503
is a failure. A change of a proxy's state is logged ("trunk proxy down" / "trunk proxy up").
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from .dialog import new_call_id, new_tag
from .message import SipRequest
from .proxyhealth import ProxyState, TrunkProxies, TrunkRoutes, check_failed
from .transaction import TransactionTimeout
from .ua import UserAgent

__all__ = ["HealthSettings", "OptionsMonitor"]

log = logging.getLogger("voicebot.sip.optionsping")


@dataclass(frozen=True)
class HealthSettings:
    interval_s: float = 30.0
    timeout_s: float = 5.0


def _log_change(trunk: str, proxy: ProxyState) -> None:
    fields = {"trunk": trunk, "proxy": proxy.uri, "last_result": proxy.last_result}
    if proxy.up:
        log.info("trunk proxy up", extra={"fields": fields})
    else:
        log.warning("trunk proxy down", extra={"fields": {**fields, "consecutive_failures": proxy.failures}})


class OptionsMonitor:
    """Pings the proxies of ``routes`` with ``ua``; ``start()`` launches one loop per proxy, ``stop()`` ends them."""

    def __init__(self, ua: UserAgent, routes: TrunkRoutes, settings: dict[str, HealthSettings]) -> None:
        self.ua = ua
        self.routes = routes
        self.settings = settings  # trunk name -> its check cadence (trunks absent here are not pinged)
        self._tasks: list[asyncio.Task[None]] = []
        for trunk in routes.trunks.values():
            trunk.listeners.append(_log_change)

    def start(self) -> None:
        for name, trunk in self.routes.trunks.items():
            settings = self.settings.get(name)
            if settings is not None:
                self._tasks.extend(asyncio.ensure_future(self._loop(trunk, proxy.uri, settings))
                                   for proxy in trunk.proxies)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _loop(self, trunk: TrunkProxies, uri: str, settings: HealthSettings) -> None:
        while True:
            started = time.monotonic()
            status, result = await self.ping(uri, settings.timeout_s)
            trunk.record(uri, check_failed(status), result, time.time())
            await asyncio.sleep(max(0.0, settings.interval_s - (time.monotonic() - started)))

    async def ping(self, uri: str, timeout_s: float) -> tuple[int | None, str]:
        """One OPTIONS to ``uri``: (final status or None, what happened)."""
        req = SipRequest(method="OPTIONS", uri=uri)
        h = req.headers
        h.add("Max-Forwards", "70")
        h.add("From", f"<{self.ua.contact_uri}>;tag={new_tag()}")
        h.add("To", f"<{uri}>")
        h.add("Call-ID", new_call_id(self.ua.advertised_host))
        h.add("CSeq", "1 OPTIONS")
        h.add("Accept", "application/sdp")
        sending = asyncio.ensure_future(self.ua.send_request(req))
        done, _ = await asyncio.wait({sending}, timeout=timeout_s)
        if not done and not self.ua.abandon_request(req):  # ends the transaction: send_request raises
            sending.cancel()  # still resolving the proxy's name: nothing was sent
        try:
            resp = await sending
        except (TransactionTimeout, asyncio.CancelledError):
            if not sending.cancelled():
                return None, "timeout"
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            return None, "timeout (proxy address not resolved)"
        except OSError as exc:  # name resolution or connection failure
            return None, f"transport error: {exc}"
        except ValueError as exc:  # a URI the stack cannot route (the config check should have caught it)
            return None, f"unroutable: {exc}"
        return resp.status, f"{resp.status} {resp.reason}"
