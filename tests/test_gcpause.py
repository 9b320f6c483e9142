"""The startup heap is frozen: later collections do not walk it (issue 21: 100-390 ms gen-2 pauses on the loop)."""

from __future__ import annotations

import gc

from voicebot.gcpause import freeze_startup_heap


def test_objects_alive_at_startup_are_out_of_the_collectors_sight_and_later_ones_are_not():
    startup = [[index] for index in range(2000)]
    try:
        frozen = freeze_startup_heap()
        later = [[index] for index in range(10)]
        tracked = {id(obj) for obj in gc.get_objects()}
        assert frozen >= len(startup)
        assert not any(id(obj) in tracked for obj in startup)
        assert all(id(obj) in tracked for obj in later)
    finally:
        gc.unfreeze()
