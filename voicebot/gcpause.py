"""Garbage-collector pauses kept off the media clock.

A full (generation 2) collection walks every tracked object: with the models, dialplans and NLU tables loaded that
took 100-390 ms on the event loop during calls, long enough to hold every call's RTP and to make admission by load
refuse INVITEs with 503 (issue 21). What exists when the server is ready lives for the whole process, so it is
moved out of the collector's sight once (`gc.freeze`); later collections only walk what calls create.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Collect once, then exclude every object alive now from future collections; returns how many were frozen."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("startup heap frozen", extra={"fields": {
        "objects": frozen, "collect_ms": round((time.perf_counter() - started) * 1000, 1)}})
    return frozen
