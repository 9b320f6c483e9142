"""A standalone server for the call page (tests, local trials): `python -m voicebot.web.devserver`.

The production server mounts the same routes on its own aiohttp app with :func:`add_webrtc_routes`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from aiohttp import web

from voicebot.web.routes import IceServerSpec, OnCall, add_webrtc_routes


@dataclass
class CallPageServer:
    """A running call page; ``url`` is the page's address."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/call"

    async def close(self) -> None:
        await self.runner.cleanup()


async def serve_call_page(host: str, port: int, on_call: OnCall,
                          ice_servers: Sequence[IceServerSpec] = ()) -> CallPageServer:
    """Serve /call and /webrtc/offer on ``host:port`` (0 = a free port) until ``close()``."""
    app = web.Application(client_max_size=64 * 1024)
    add_webrtc_routes(app, on_call, ice_servers, media_host=host)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return CallPageServer(runner, host, bound)


async def _keypad_demo(host: str, port: int, cache_dir: Path) -> None:
    from voicebot.channels.base import Channel
    from voicebot.calls.keypad_session import DIGIT_WORDS, CallRecord, DemoDtmfSession, DemoPrompts
    from voicebot.speech.prompts import PromptCache

    prompts = DemoPrompts(greeting="Welcome to the voicebot keypad demo. Please enter some digits, then press hash.",
                          goodbye="Thank you for calling. Goodbye.")
    cache = PromptCache(cache_dir)
    texts = [prompts.greeting, prompts.goodbye, "You entered", "We did not receive any digits.",
             *DIGIT_WORDS.values()]
    await asyncio.get_running_loop().run_in_executor(None, cache.prerender, texts, "en", 16000)

    async def on_call(channel: Channel) -> None:
        record = CallRecord(call_id=channel.call_id, from_="browser", to="keypad-demo")
        await DemoDtmfSession(channel, prompts, cache, record, rate=16000).run()
        print(f"call {record.call_id}: digits {record.digits!r}, {record.outcome}", file=sys.stderr, flush=True)

    server = await serve_call_page(host, port, on_call)
    print(f"call page: {server.url}", file=sys.stderr, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the call page with the keypad demo behind it")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "voicebot" / "prompts"))
    args = parser.parse_args(argv)
    try:
        asyncio.run(_keypad_demo(args.host, args.port, Path(args.cache_dir)))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
