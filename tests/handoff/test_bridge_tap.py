"""ChannelBridge's tap: the live transcript sees each leg's frames as received (side, audio, rate), the relay
itself unchanged."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from voicebot.handoff.bridge import ChannelBridge


class Leg:
    def __init__(self, rate: int) -> None:
        self.live_rate = rate
        self.played: list[np.ndarray] = []
        self.callback: Callable[[np.ndarray], None] | None = None

    def stop_playback(self) -> None:
        pass

    def on_live_audio(self, callback: Callable[[np.ndarray], None] | None) -> None:
        self.callback = callback

    def play_live(self, pcm: np.ndarray, max_backlog_frames: int) -> None:
        self.played.append(pcm)


def test_the_tap_sees_both_legs_frames_at_their_own_rate_and_the_relay_goes_on() -> None:
    caller, agent = Leg(8000), Leg(48000)
    bridge = ChannelBridge(caller, agent)  # type: ignore[arg-type]
    seen: list[tuple[str, int, int]] = []
    bridge.tap = lambda side, pcm, rate: seen.append((side, pcm.size, rate))
    assert caller.callback is not None and agent.callback is not None
    for _ in range(3):
        caller.callback(np.full(160, 1000, np.int16))  # 20 ms at 8 kHz
        agent.callback(np.full(960, 1000, np.int16))  # 20 ms at 48 kHz
    assert seen == [("a", 160, 8000), ("b", 960, 48000)] * 3
    assert bridge.frames_a_to_b == 3 and bridge.frames_b_to_a == 3
    assert sum(p.size for p in agent.played) > 0 and sum(p.size for p in caller.played) > 0
    bridge.close()
    assert caller.callback is None and agent.callback is None
