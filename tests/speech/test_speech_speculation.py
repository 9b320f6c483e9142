"""Speculative recognition: one decode in flight per listen, overtaken audio never decoded, results reused."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voicebot.speech.services import Utterance
from voicebot.speech.speculation import Speculation


class Recogniser:
    """A recogniser whose decodes finish when the test says so; records what it was asked to decode."""

    def __init__(self) -> None:
        self.asked: list[int] = []
        self.gates: list[asyncio.Future[None]] = []

    async def __call__(self, audio: np.ndarray) -> Utterance:
        self.asked.append(int(audio[0]))
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        await gate
        return Utterance(f"audio {int(audio[0])}", 0.9, "en", 0.1)

    def finish(self, index: int, error: Exception | None = None) -> None:
        if error is not None:
            self.gates[index].set_exception(error)
        else:
            self.gates[index].set_result(None)


def audio(marker: int) -> np.ndarray:
    return np.full(320, marker, dtype=np.int16)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_result_of_the_final_revision_is_reused_without_decoding_again() -> None:
    recogniser, woken = Recogniser(), []
    speculation = Speculation(recogniser, lambda: woken.append(1))
    speculation.start(1, audio(1))
    await settle()
    assert speculation.result(1) is None
    recogniser.finish(0)
    await settle()
    assert speculation.result(1) == Utterance("audio 1", 0.9, "en", 0.1) and woken == [1]
    utterance, reused = await speculation.final(1, audio(1))
    assert reused and utterance.text == "audio 1" and recogniser.asked == [1] and speculation.decodes == 1


@pytest.mark.asyncio
async def test_at_most_one_decode_in_flight_and_overtaken_audio_is_skipped() -> None:
    recogniser = Recogniser()
    speculation = Speculation(recogniser)
    speculation.start(1, audio(1))
    speculation.cancel(1)  # the caller spoke again while revision 1 decodes
    speculation.start(2, audio(2))
    speculation.cancel(2)
    speculation.start(3, audio(3))
    await settle()
    assert recogniser.asked == [1]  # 2 and 3 wait; 2 was overtaken by 3 before it could start
    recogniser.finish(0)
    await settle()
    assert recogniser.asked == [1, 3] and speculation.result(1) is None  # the stale result is not kept
    final = asyncio.ensure_future(speculation.final(3, audio(3)))
    await settle()
    recogniser.finish(1)
    utterance, reused = await final
    assert reused and utterance.text == "audio 3" and speculation.stale == 1 and speculation.decodes == 2


@pytest.mark.asyncio
async def test_final_of_a_waiting_revision_starts_it_when_the_worker_frees() -> None:
    recogniser = Recogniser()
    speculation = Speculation(recogniser)
    speculation.start(1, audio(1))
    speculation.cancel(1)
    speculation.start(2, audio(2))
    final = asyncio.ensure_future(speculation.final(2, audio(2)))
    await settle()
    assert recogniser.asked == [1]
    recogniser.finish(0)
    await settle()
    recogniser.finish(1)
    utterance, reused = await final
    assert (utterance.text, reused, recogniser.asked) == ("audio 2", True, [1, 2])


@pytest.mark.asyncio
async def test_a_failed_speculative_decode_fails_the_endpoint_as_a_direct_decode_would() -> None:
    recogniser = Recogniser()
    speculation = Speculation(recogniser)
    speculation.start(1, audio(1))
    await settle()
    recogniser.finish(0, RuntimeError("worker died"))
    await settle()
    assert speculation.result(1) is None
    with pytest.raises(RuntimeError, match="worker died"):
        await speculation.final(1, audio(1))
    assert recogniser.asked == [1]


@pytest.mark.asyncio
async def test_unknown_revision_decodes_now_and_close_drops_waiting_audio() -> None:
    recogniser = Recogniser()
    speculation = Speculation(recogniser)
    final = asyncio.ensure_future(speculation.final(None, audio(7)))
    await settle()
    recogniser.finish(0)
    assert (await final)[1] is False
    speculation.start(2, audio(2))
    await settle()
    speculation.cancel(2)
    speculation.start(3, audio(3))
    speculation.close()
    await settle()
    assert recogniser.asked == [7, 2]  # revision 3 never ran


@pytest.mark.asyncio
async def test_saturated_engines_defer_a_pause_until_it_is_kicked_or_ends() -> None:
    recogniser, busy = Recogniser(), [True]
    speculation = Speculation(recogniser, busy=lambda: busy[0])
    speculation.start(1, audio(1))
    speculation.cancel(1)  # a short inner pause while the engines were busy: never decoded
    speculation.start(2, audio(2))
    await settle()
    assert recogniser.asked == []
    speculation.kick(1)  # an overtaken revision is not started
    speculation.kick(2)  # the pause lasted: decode now, busy or not
    await settle()
    assert recogniser.asked == [2]
    recogniser.finish(0)
    await settle()
    assert speculation.result(2) is not None
    speculation.start(3, audio(3))  # still busy, never kicked: decoded at the endpoint
    final = asyncio.ensure_future(speculation.final(3, audio(3)))
    await settle()
    recogniser.finish(1)
    utterance, reused = await final
    assert (utterance.text, reused, recogniser.asked) == ("audio 3", True, [2, 3])


@pytest.mark.asyncio
async def test_pause_decodes_are_speculative_until_the_turn_ends_on_them() -> None:
    from voicebot.speech.scheduling import CURRENT_TICKET, Ticket

    recogniser = Recogniser()
    tickets: list[Ticket | None] = []

    async def transcribe(pcm: np.ndarray) -> Utterance:
        tickets.append(CURRENT_TICKET.get())  # what the worker pool sees when the job is queued
        return await recogniser(pcm)

    speculation = Speculation(transcribe)
    speculation.start(1, audio(1))
    speculation.cancel(1)
    speculation.start(2, audio(2))  # waits behind revision 1
    await settle()
    assert len(tickets) == 1 and tickets[0] is not None and not tickets[0].urgent
    assert CURRENT_TICKET.get() is None  # the session's own decodes stay urgent
    final = asyncio.ensure_future(speculation.final(2, audio(2)))
    await settle()
    recogniser.finish(0)
    await settle()
    assert len(tickets) == 2 and tickets[1] is not None and tickets[1].urgent  # launched for a waiting caller
    recogniser.finish(1)
    assert (await final)[1]
    speculation.start(3, audio(3))
    await settle()
    assert tickets[2] is not None and not tickets[2].urgent
    final = asyncio.ensure_future(speculation.final(3, audio(3)))
    await settle()
    assert tickets[2].urgent  # the running pause decode is promoted when the turn ends on it
    recogniser.finish(2)
    assert (await final)[0].text == "audio 3"
