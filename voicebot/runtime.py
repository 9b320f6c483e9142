"""What `voicebot serve` shares between calls: loaded dialplans, their NLU engines, speech workers, webhooks."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from voicebot.config import ServerConfig
from voicebot.demo_backend.app import DemoBackend, start_demo_backend
from voicebot.demo_backend.data import new_store
from voicebot.dialplan.actions import Answer, Webhook
from voicebot.dialplan.events import KnowledgeResult, WebhookResult
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.loader import load_dialplan
from voicebot.dialplan.prompts import parse_ssml_lite
from voicebot.dialplan.schema import Dialplan
from voicebot.dialplan.webhook_policy import (
    WebhookEgress,
    WebhookSecretMissing,
    expand_env,
    mask,
    webhook_findings,
)
from voicebot.dialplan.webhook_urls import check_webhook_urls
from voicebot.dialplan.webhooks import perform, resolve_url
from voicebot.knowledge.base import KnowledgeBase, knowledge_stamp, load_knowledge
from voicebot.knowledge.vectorcache import VectorCache, default_cache_dir
from voicebot.nlu.base import NluEngine, load_nlu
from voicebot.speech.prompts import PromptCache
from voicebot.speech.services import SpeechServices, split_sentences, voice_for
from voicebot.speech.workers import SpeechWorkerPool
from voicebot.yamlsrc import ConfigErrors, YamlSourceError, load_yaml

log = logging.getLogger("voicebot.runtime")

KEYPAD_DEMO = "keypad-demo"  # built-in DTMF-only flow (no models): greet, collect digits, read back
PROMPT_KEYS = {"say", "text", "en", "zh", "reprompts", "confirm", "prompt", "offer"}


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
                    # The session speaks sentence by sentence, so that is the unit that gets cached.
                    for sentence in split_sentences(part.strip()) or [part.strip()]:
                        found.setdefault(voice_for(lang, sentence), set()).add(sentence)

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
        self._mtimes: dict[str, tuple[float, ...]] = {}
        self.demo_backend: DemoBackend | None = None
        self.egress = WebhookEgress(config.webhook_egress.allow, config.webhook_egress.deny)
        self.knowledge: KnowledgeBase | None = None
        self._knowledge_stamp: tuple[tuple[str, float], ...] = ()
        self.vectors = VectorCache(Path(config.knowledge_cache_dir) if config.knowledge_cache_dir
                                   else default_cache_dir())

    def load(self) -> None:
        """Load every routed dialplan (raises the loader's ConfigErrors naming file:line)."""
        unresolved = []
        for name in sorted(routed_dialplans(self.config) - {KEYPAD_DEMO}):
            path = self._path(name)
            if not path.exists():
                raise FileNotFoundError(f"dialplan {name!r} is routed in the config but {path} does not exist")
            plan = load_dialplan(path)
            unresolved += self._unresolved_webhooks(plan, path)
            self._install(name, plan)
            self._mtimes[name] = self._stamp(name)
        if unresolved:
            raise ConfigErrors(unresolved)
        self.load_knowledge()

    @property
    def knowledge_dir(self) -> Path:
        return Path(self.config.knowledge_dir)

    def load_knowledge(self) -> None:
        """Index the knowledge articles when a routed dialplan answers from them (the API's /kb/search serves the
        same set); raises ConfigErrors naming file:line.

        The index is complete before the server listens, so the first caller after a restart gets the answer
        the hundredth gets: a contact centre audits which article (and version) answered, and a stand-in
        (TF-IDF alone ranks the wrong article more often; nomatch sends every early caller to an agent) would
        answer differently exactly when restarts happen, during deploys. What made that slow, encoding every
        article, is read from the vector cache instead (`knowledge_cache_dir`): only articles changed since the
        last start are encoded."""
        wanted = any(node.answer is not None for plan in self.dialplans.values() for node in plan.nodes.values())
        if not wanted:
            return
        self._knowledge_stamp = knowledge_stamp(self.knowledge_dir)
        hits, misses = self.vectors.hits, self.vectors.misses
        self.knowledge = load_knowledge(self.knowledge_dir, cache=self.vectors)
        self.vectors.prune()  # after the build: every entry in use was just read
        log.info("knowledge base loaded", extra={"fields": {
            "articles": len(self.knowledge), "vectors_cached": self.vectors.hits - hits,
            "vectors_encoded": self.vectors.misses - misses}})

    def reload_knowledge(self) -> bool:
        """Re-index changed articles; a broken set is refused (logged with file:line) and the old one keeps
        answering. True when a new set is in force."""
        wanted = any(node.answer is not None for plan in self.dialplans.values() for node in plan.nodes.values())
        if self.knowledge is None and not wanted:
            return False
        stamp = knowledge_stamp(self.knowledge_dir)
        if stamp == self._knowledge_stamp and self.knowledge is not None:
            return False
        self._knowledge_stamp = stamp
        try:
            fresh = load_knowledge(self.knowledge_dir, cache=self.vectors)  # only changed articles are encoded
        except (ConfigErrors, YamlSourceError) as exc:
            log.error("knowledge reload refused; the previous articles keep answering",
                      extra={"fields": {"error": str(exc)}})
            return False
        self.knowledge = fresh  # one reference swap: searches in progress finish on the old set
        log.info("knowledge base reloaded", extra={"fields": {"articles": len(fresh)}})
        return True

    async def answer(self, action: Answer) -> KnowledgeResult:
        """Retrieval for a dialplan's answer: in a worker thread (an encoder pass costs milliseconds)."""
        kb = self.knowledge
        if kb is None:
            return KnowledgeResult((), action.query)
        return await asyncio.get_running_loop().run_in_executor(None, kb.answer, action)

    def _unresolved_webhooks(self, plan: Dialplan, path: Path) -> list[YamlSourceError]:
        """Webhooks with no URL in the dialplan or the config, and no demo backend turned on to answer them."""
        return check_webhook_urls(plan, path, self.config.webhooks, self.config.demo_backend)

    def _path(self, name: str) -> Path:
        return Path(self.config.dialplans_dir) / f"{name}.yaml"

    def _stamp(self, name: str) -> tuple[float, ...]:
        """Modification times of a dialplan and its NLU data: a change to any of them reloads it."""
        stamps = [self._path(name).stat().st_mtime if self._path(name).exists() else 0.0]
        plan = self.dialplans.get(name)
        if plan is not None and plan.nlu:
            for nlu_file in sorted((Path(self.config.nlu_dir) / plan.nlu).glob("*/nlu.yml")):
                stamps.append(nlu_file.stat().st_mtime)
        return tuple(stamps)

    def _install(self, name: str, plan: Dialplan) -> None:
        """Swap in a new version atomically for new calls; calls in progress keep the interpreter they started with."""
        nlu = load_nlu(Path(self.config.nlu_dir) / plan.nlu) if plan.nlu else None
        self._warn_webhooks(name)
        self.dialplans[name] = plan
        self.interpreters[name] = Interpreter(plan)
        if nlu is not None:
            self.nlu[name] = nlu
        else:
            self.nlu.pop(name, None)

    def _warn_webhooks(self, name: str) -> None:
        """Literal secrets and refused destinations: `voicebot validate` errors, a warning when serving."""
        data, _lines = load_yaml(self._path(name))
        for loc, problem, fix in webhook_findings(data, self.egress):
            log.warning("dialplan webhook problem: %s", problem,
                        extra={"fields": {"dialplan": name, "at": ".".join(map(str, loc)), "fix": fix}})

    def reload_changed(self) -> list[str]:
        """Reload dialplans whose files changed; a broken one is refused (logged with file:line) and the old one
        keeps serving. Returns the names reloaded."""
        reloaded = []
        for name in list(self.dialplans):
            stamp = self._stamp(name)
            if stamp == self._mtimes.get(name):
                continue
            self._mtimes[name] = stamp
            try:
                plan = load_dialplan(self._path(name))
                unresolved = self._unresolved_webhooks(plan, self._path(name))
                if unresolved:
                    raise ConfigErrors(unresolved)
                if plan.nlu:
                    languages = {lang.split("-")[0] for lang in plan.languages}
                    _warm_nlu(load_nlu(Path(self.config.nlu_dir) / plan.nlu), languages)  # refuse broken NLU data
            except Exception as exc:  # noqa: BLE001 - any error: keep the old version serving
                log.error("dialplan reload refused; the previous version keeps serving",
                          extra={"fields": {"dialplan": name, "error": str(exc)}})
                continue
            self._install(name, plan)
            reloaded.append(name)
            log.info("dialplan reloaded", extra={"fields": {"dialplan": name, "nodes": len(plan.nodes)}})
        if self.reload_knowledge():
            reloaded.append("knowledge")
        return reloaded

    async def watch(self, interval_s: float = 2.0) -> None:
        """Poll for changed dialplans (hot reload); NLU retraining runs off the event loop."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval_s)
            try:
                await loop.run_in_executor(None, self.reload_changed)
            except Exception:
                log.exception("dialplan watcher failed")

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
                                     voices={v: available[v] for v in voices if v in available},
                                     asr_window_s=self.config.speech.asr_window_s)
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
        await self.open_webhooks(say)

    async def open_webhooks(self, say: Callable[[str], None] = lambda message: None) -> None:
        """The HTTP client for webhooks, and the built-in demo backend when the config turns it on."""
        if self.config.demo_backend:
            self.demo_backend = await start_demo_backend(store=new_store(today=self.config.demo_today))
            # Configured (real) backends win over the built-in demo handlers of the same name.
            self.endpoints = {**self.demo_backend.endpoints(), **self.config.webhooks}
            say(f"demo backend on {self.demo_backend.base_url} ({len(self.demo_backend.endpoints())} hooks)")
        self.http = httpx.AsyncClient()

    async def webhook(self, action: Webhook) -> WebhookResult:
        """Perform a webhook within the egress policy, with ``${NAME}`` header secrets from the environment; the
        result never contains those secrets (masked), so they are neither spoken nor logged."""
        assert self.http is not None
        url = resolve_url(action, self.endpoints)
        demo = self.demo_backend is not None and url is not None and url.startswith(self.demo_backend.base_url + "/")
        if url is not None and not demo:
            reason = await self.egress.refuses_url(url)
            if reason is not None:
                log.warning("webhook refused by egress policy", extra={"fields": {"webhook": action.name,
                                                                                  "reason": reason}})
                return WebhookResult(False, None, f"webhook destination not allowed: {reason}")
        try:
            headers, secrets = expand_env(action.headers, os.environ)
        except WebhookSecretMissing as exc:
            log.error("webhook not sent: %s", exc, extra={"fields": {"webhook": action.name}})
            return WebhookResult(False, None, f"webhook secret missing: {exc}")
        result = await perform(replace(action, url=url, name=None) if url else action, self.http,
                               endpoints=self.endpoints, headers=headers)
        return WebhookResult(result.ok, mask(result.data, secrets), mask(result.error, secrets))

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
