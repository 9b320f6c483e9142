"""What `voicebot serve` shares between calls: loaded dialplans, their NLU engines, speech workers, webhooks."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from voicebot.config import ServerConfig
from voicebot.demo_backend.app import DemoBackend, start_demo_backend
from voicebot.dialplan.actions import Webhook
from voicebot.dialplan.events import WebhookResult
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.loader import load_dialplan
from voicebot.dialplan.prompts import parse_ssml_lite
from voicebot.dialplan.schema import Dialplan
from voicebot.dialplan.webhooks import perform
from voicebot.nlu.base import NluEngine, load_nlu
from voicebot.speech.prompts import PromptCache
from voicebot.speech.services import SpeechServices, voice_for
from voicebot.speech.workers import SpeechWorkerPool

log = logging.getLogger("voicebot.runtime")

KEYPAD_DEMO = "keypad-demo"  # built-in DTMF-only flow (no models): greet, collect digits, read back
PROMPT_KEYS = {"say", "text", "en", "zh", "reprompts", "confirm", "prompt"}


def routed_dialplans(config: ServerConfig) -> set[str]:
    names = {config.routing.default_dialplan, *config.routing.dids.values()}
    for trunk in config.trunks:
        names.update(trunk.dids.values())
    return names


def static_prompts(plan: Dialplan) -> dict[str, set[str]]:
    """Prompt texts without templates, per language, split at SSML-lite pauses (prerendered at start)."""
    found: dict[str, set[str]] = {}
    default_lang = plan.languages[0]

    def visit(value: Any, key: str | None, lang: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                child_lang = k if k in ("en", "zh") else lang
                visit(v, k if k in PROMPT_KEYS or key in PROMPT_KEYS else k, child_lang)
        elif isinstance(value, list):
            for item in value:
                visit(item, key, lang)
        elif isinstance(value, str) and key in PROMPT_KEYS and "{{" not in value and "{%" not in value:
            try:
                parts = parse_ssml_lite(value)
            except ValueError:
                return
            for part in parts:
                if isinstance(part, str) and part.strip():
                    found.setdefault(voice_for(lang), set()).add(part.strip())

    visit(plan.model_dump(by_alias=True), None, default_lang)
    return found


class Runtime:
    """Dialplans + NLU + speech for dialplan calls; empty when only the keypad demo is routed."""

    def __init__(self, config: ServerConfig, cache: PromptCache) -> None:
        self.config = config
        self.cache = cache
        self.dialplans: dict[str, Dialplan] = {}
        self.interpreters: dict[str, Interpreter] = {}
        self.nlu: dict[str, NluEngine] = {}
        self.pool: SpeechWorkerPool | None = None
        self.speech: SpeechServices | None = None
        self.http: httpx.AsyncClient | None = None
        self.endpoints: dict[str, str] = dict(config.webhooks)
        self.demo_backend: DemoBackend | None = None

    def load(self) -> None:
        """Load every routed dialplan (raises the loader's ConfigErrors naming file:line)."""
        directory = Path(self.config.dialplans_dir)
        for name in sorted(routed_dialplans(self.config) - {KEYPAD_DEMO}):
            path = directory / f"{name}.yaml"
            if not path.exists():
                raise FileNotFoundError(f"dialplan {name!r} is routed in the config but {path} does not exist")
            plan = load_dialplan(path)
            self.dialplans[name] = plan
            self.interpreters[name] = Interpreter(plan)
            if plan.nlu:
                self.nlu[name] = load_nlu(Path(self.config.nlu_dir) / plan.nlu)

    async def start(self, progress: bool = True) -> None:
        if not self.dialplans:
            return
        say = (lambda msg: print(f"voicebot: {msg}", file=sys.stderr, flush=True)) if progress else (lambda m: None)
        for name, engine in self.nlu.items():
            say(f"training NLU for {name}...")
            languages = {lang.split("-")[0] for lang in self.dialplans[name].languages}
            await asyncio.get_running_loop().run_in_executor(None, _warm_nlu, engine, languages)
        workers = self.config.speech.workers or (os.cpu_count() or 1)
        voices = {voice_for(lang) for plan in self.dialplans.values() for lang in plan.languages}
        say(f"loading speech models in {workers} worker process(es): Whisper {self.config.speech.asr_model}, "
            f"voices {', '.join(sorted(voices))} (first start joins model files into the cache)...")
        from voicebot.speech.voices import default_voices

        available = default_voices()
        self.pool = SpeechWorkerPool(workers, asr_models=(self.config.speech.asr_model,),
                                     voices={v: available[v] for v in voices if v in available})
        await self.pool.start()
        static: dict[str, set[str]] = {}
        for plan in self.dialplans.values():
            for voice, texts in static_prompts(plan).items():
                static.setdefault(voice, set()).update(texts)
        all_static = {t for texts in static.values() for t in texts}
        self.speech = SpeechServices(self.pool, self.cache, asr_model=self.config.speech.asr_model,
                                     static_texts=all_static)
        say(f"rendering {len(all_static)} static prompts...")
        for voice, texts in static.items():
            if voice not in available:
                log.warning("no %s voice installed: %d prompts cannot be spoken", voice, len(texts))
                continue
            await asyncio.gather(*(self.speech.synthesize(text, voice, 16000) for text in sorted(texts)))
        if self.config.demo_backend:
            self.demo_backend = await start_demo_backend()
            # Configured (real) backends win over the built-in demo handlers of the same name.
            self.endpoints = {**self.demo_backend.endpoints(), **self.config.webhooks}
            say(f"demo backend on {self.demo_backend.base_url} ({len(self.demo_backend.endpoints())} hooks)")
        self.http = httpx.AsyncClient()

    async def webhook(self, action: Webhook) -> WebhookResult:
        assert self.http is not None
        return await perform(action, self.http, endpoints=self.endpoints)

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()
        if self.demo_backend is not None:
            await self.demo_backend.close()
        if self.pool is not None:
            await self.pool.close()


def _warm_nlu(engine: NluEngine, languages: set[str]) -> None:
    for lang in languages:
        engine.parse("hello", lang)
