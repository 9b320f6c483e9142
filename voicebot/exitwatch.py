"""A bound on shutdown: once `voicebot serve` is told to stop, the process is gone within a deadline.

Orderly shutdown waits on things outside its control (peers that never answer a BYE, a speech job in a worker
process, executor threads joined by asyncio.run and at interpreter exit). Each is bounded where it happens; this
watchdog is the last line: a daemon thread that ends the process with ``os._exit`` if it is still alive when the
deadline passes, saying so on stderr.
"""

from __future__ import annotations

import os
import sys
import threading

OVERRAN_EXIT_CODE = 70  # EX_SOFTWARE: the orderly shutdown did not finish in time


def start_exit_watchdog(deadline_s: float, exit_code: int = OVERRAN_EXIT_CODE) -> threading.Timer:
    """Arm the watchdog: ``os._exit(exit_code)`` after ``deadline_s`` seconds unless the process exited before."""
    if deadline_s <= 0:
        raise ValueError(f"exit deadline must be positive, got {deadline_s}")

    def overran() -> None:
        threads = sorted(t.name for t in threading.enumerate() if t is not threading.current_thread())
        print(f"voicebot: shutdown overran its {deadline_s:g} s bound; exiting now (threads still alive: "
              f"{', '.join(threads) or 'none'})", file=sys.stderr, flush=True)
        os._exit(exit_code)

    timer = threading.Timer(deadline_s, overran)
    timer.name = "exit-watchdog"
    timer.daemon = True
    timer.start()
    return timer
