"""The `voicebot` command line: serve, call (test softphone), hear (how the bot hears a recording)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "sip_config" / "voicebot.yaml"

log = logging.getLogger("voicebot.cli")
SHUTDOWN_MARGIN_S = 15.0  # after the calls' grace: BYEs, worker processes, the API, threads


def _serve(args: argparse.Namespace) -> int:
    from voicebot.config import load_server_config
    from voicebot.logs import setup_logging
    from voicebot.yamlsrc import ConfigErrors, YamlSourceError

    try:
        config = load_server_config(args.config)
    except (ConfigErrors, YamlSourceError) as exc:
        print(f"voicebot: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    if args.port is not None or args.host is not None:
        listen = config.listen.model_copy(update={k: v for k, v in (("port", args.port), ("host", args.host))
                                                  if v is not None})
        config = config.model_copy(update={"listen": listen})
    setup_logging(config.log.level, config.log.json_lines, config.log.keyed_digits == "shown")
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency
        pass
    return asyncio.run(_serve_async(config, args))


async def _serve_async(config, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    from voicebot.exitwatch import start_exit_watchdog
    from voicebot.gcpause import freeze_startup_heap
    from voicebot.runtime import Runtime
    from voicebot.server import VoicebotServer, default_cache_dir
    from voicebot.yamlsrc import ConfigErrors, YamlSourceError
    from voicebot.calls.keypad_session import DIGIT_WORDS
    from voicebot.speech.prompts import PromptCache

    from voicebot.api.cli import default_tokens_path
    from voicebot.statepaths import StatePathError, check_writable, state_paths

    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir() / "prompts"
    tokens_file = Path(config.api.tokens_file) if config.api.tokens_file else default_tokens_path()
    try:
        check_writable(state_paths(config, cache_dir, tokens_file))
    except StatePathError as exc:
        print(f"voicebot: {exc}", file=sys.stderr)
        return 2
    cache = PromptCache(cache_dir)
    texts = [config.prompts.greeting, config.prompts.goodbye, "You entered", "We did not receive any digits.",
             *DIGIT_WORDS.values()]
    print(f"voicebot: rendering {len(texts)} prompts (first start loads the English voice)...", file=sys.stderr,
          flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, cache.prerender, texts)
    runtime = Runtime(config, cache)
    try:
        runtime.load()
    except (ConfigErrors, YamlSourceError, FileNotFoundError) as exc:
        print(f"voicebot: cannot load dialplans:\n{exc}", file=sys.stderr)
        return 2
    await runtime.start()
    try:
        server = VoicebotServer(config, cache, runtime=runtime)
    except ValueError as exc:
        print(f"voicebot: {exc}", file=sys.stderr)
        await runtime.close()
        return 2
    try:
        await server.start()
    except OSError as exc:
        if exc.filename:  # a file, not a socket: say which
            print(f"voicebot: cannot create or write {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        else:
            print(f"voicebot: cannot listen: {exc} — change listen.port / api.port in the config", file=sys.stderr)
        await runtime.close()
        return 2
    except ValueError as exc:  # e.g. an agent's SIP password is not set (compliance.secrets.SecretError)
        print(f"voicebot: {exc}", file=sys.stderr)
        await runtime.close()
        return 2
    freeze_startup_heap()
    host = f"[{config.listen.host}]" if ":" in config.listen.host else config.listen.host
    bound = " / ".join(f"{kind} {host}:{port}" for kind, port in server.ua.ports.items())
    print(f"voicebot: listening on {bound} — dial sip:demo@{host}:{server.ua.port}", file=sys.stderr, flush=True)
    watcher = asyncio.ensure_future(runtime.watch()) if runtime.dialplans else None

    def reload() -> None:  # SIGHUP: dialplans off the loop (NLU training), the certificate on it (a quick swap)
        loop.run_in_executor(None, runtime.reload_changed)
        server.reload_tls()

    loop.add_signal_handler(signal.SIGHUP, reload)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    print(f"voicebot: stopping; calls in progress have {config.shutdown_grace_s:g} s to finish", file=sys.stderr,
          flush=True)
    start_exit_watchdog(config.shutdown_grace_s + SHUTDOWN_MARGIN_S)
    await server.drain(config.shutdown_grace_s)
    await runtime.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voicebot", description="Offline-first telephony IVR and voice-bot server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="answer calls with the configured dialplans")
    serve.add_argument("--config", default=str(DEFAULT_CONFIG), help="server YAML (default: %(default)s)")
    serve.add_argument("--host", help="override listen.host")
    serve.add_argument("--port", type=int, help="override listen.port (0 = any free port)")
    serve.add_argument("--cache-dir", help="prompt cache directory (default: $VOICEBOT_CACHE/prompts)")
    serve.set_defaults(func=_serve)

    from voicebot.dialplan.cli import register as register_dialplan_commands
    from voicebot.nlu.cli import register as register_nlu_commands
    from voicebot.softphone.phone import add_call_arguments, run_call

    from voicebot.api.cli import register as register_token_commands
    from voicebot.compliance.retention import register as register_retention_command
    from voicebot.records.cli import register as register_records_commands

    register_dialplan_commands(sub)
    register_nlu_commands(sub)
    register_token_commands(sub)
    register_retention_command(sub)
    register_records_commands(sub)
    from voicebot.compliance.audit_repair import register as register_audit_commands

    register_audit_commands(sub)
    from voicebot.speech.hear import register as register_hear_command

    register_hear_command(sub)
    from voicebot.knowledge.cli import register as register_knowledge_commands

    register_knowledge_commands(sub)

    call = sub.add_parser("call", help="place a test call with the pjsua2 softphone")
    add_call_arguments(call)
    call.set_defaults(func=run_call)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
