"""`voicebot serve`, unchanged, plus the figures the SIP benchmarks need but the server does not log.

    .venv/bin/python bench/voicebot_serve_with_stats.py --config bench.yaml   # same arguments as `voicebot serve`

Added, observation only (no behaviour change of the server):
- every second a JSON line ``{"msg": "bench stats", ...}`` with the media ticker's stats (ticks, late_ticks,
  skipped_ticks, max_lateness_ms, mean/max_busy_ms), active calls and the UA's message counters;
- after each SIP call's "call ended" line a ``{"msg": "bench call media", ...}`` line with its full RtpStream stats
  (jitter_late, interarrival_jitter_ms, ... which "call ended" leaves out);
- SIGUSR1 resets the ticker's stats, so a benchmark can measure one window (e.g. the hold phase) alone;
- SIGUSR2 logs ``{"msg": "bench objects", ...}``: live objects by type (the 12 most common, after a full GC)
  and the sizes of the UA's per-call tables, to tell a leak from allocator growth.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import gc
import logging
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicebot import cli  # noqa: E402
from voicebot.calls.legs import SipLeg  # noqa: E402
from voicebot.calls.lifecycle import CallLifecycle  # noqa: E402
from voicebot.rtp.ticker import get_ticker  # noqa: E402
from voicebot.server import VoicebotServer  # noqa: E402

log = logging.getLogger("voicebot.bench")
STATS_PERIOD_S = 1.0

_original_start = VoicebotServer.start
_original_end = CallLifecycle.end


async def _report_stats(server: VoicebotServer) -> None:
    ticker = get_ticker()
    while True:
        await asyncio.sleep(STATS_PERIOD_S)
        fields: dict[str, Any] = {"ticker": ticker.stats(), "active_calls": server.ua.active_calls,
                                  "ua": dataclasses.asdict(server.ua.stats)}
        log.info("bench stats", extra={"fields": fields})


def _log_objects(server: VoicebotServer) -> None:
    gc.collect()
    census = collections.Counter(type(obj).__qualname__ for obj in gc.get_objects())
    tables = {name: len(value) for name, value in vars(server.ua).items() if isinstance(value, (dict, list, set))}
    tables["server.records"] = len(server.records)
    log.info("bench objects", extra={"fields": {"top_types": dict(census.most_common(12)), "tables": tables}})


async def _start_with_stats(self: VoicebotServer) -> None:
    await _original_start(self)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, get_ticker().reset_stats)
    loop.add_signal_handler(signal.SIGUSR2, _log_objects, self)
    self._background.add(asyncio.ensure_future(_report_stats(self)))


async def _end_with_media(self: CallLifecycle) -> None:
    ended_before = self._ended  # noqa: SLF001 - observation only
    await _original_end(self)
    if not ended_before and isinstance(self.leg, SipLeg):
        log.info("bench call media", extra={"fields": {"call_id": self.call_id, **self.leg.stream.stats}})


VoicebotServer.start = _start_with_stats  # type: ignore[method-assign]
CallLifecycle.end = _end_with_media  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(cli.main(["serve", *sys.argv[1:]]))
