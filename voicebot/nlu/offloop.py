"""NLU parses off the event loop: a parse costs ~1-9 ms of CPU with the sentence encoders (and a network round
trip with the Rasa HTTP backend), which on the loop would delay every call's 20 ms media tick. A small shared
thread pool runs them (the encoders release the GIL in their native code)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from voicebot.nlu.base import NluEngine, NluResult

NLU_THREADS = 2
_executor = ThreadPoolExecutor(max_workers=NLU_THREADS, thread_name_prefix="nlu")


async def parse_off_loop(engine: NluEngine, text: str, lang: str) -> NluResult:
    """`engine.parse(text, lang)` in the NLU threads; its exceptions are raised here."""
    return await asyncio.get_running_loop().run_in_executor(_executor, engine.parse, text, lang)
