"""`voicebot hear AUDIO`: how the bot hears a recording, through the phone line first.

The audio goes through 8 kHz G.711 μ-law and the server's resampling (voicebot.speech.phoneline), then Whisper as a
call's speech worker runs it. With `--dialplan NAME --node NODE` the node's grammar (its ask) is used, and the slot
value or intent the node would take is shown.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def register(sub: Any) -> None:
    hear = sub.add_parser("hear", help="recognise a recording as a call would (G.711 line, the node's grammar)")
    hear.add_argument("audio", help="WAV/FLAC file (any rate, mono or first channel)")
    hear.add_argument("--lang", choices=("en", "zh"), help="language (default: detected, as a bilingual call)")
    hear.add_argument("--dialplan", help="dialplan name (dialplans/<NAME>.yaml) or path")
    hear.add_argument("--node", help="node whose ask/listen the recording answers (needs --dialplan)")
    hear.add_argument("--dialplans-dir", default=str(REPO_ROOT / "dialplans"))
    hear.add_argument("--nlu-dir", default=str(REPO_ROOT / "nlu_models"))
    hear.add_argument("--model", default="base", help="Whisper model (default: %(default)s)")
    hear.add_argument("--codec", default="PCMU", choices=("PCMU", "PCMA"))
    hear.add_argument("--json", action="store_true", help="one JSON object on stdout")
    hear.set_defaults(func=run_hear)


def run_hear(args: argparse.Namespace) -> int:
    try:
        report = hear(args)
    except (OSError, ValueError, KeyError) as exc:
        print(f"voicebot hear: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        for key, value in report.items():
            print(f"{key:>14}: {value}")
    return 0


def hear(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import soundfile

    from voicebot.speech.asr import WhisperAsr
    from voicebot.speech.phoneline import through_phone_line

    if args.node and not args.dialplan:
        raise ValueError("--node needs --dialplan")
    path = Path(args.audio)
    if not path.is_file():
        raise FileNotFoundError(f"no such audio file: {path}")
    try:
        pcm, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
    except RuntimeError as exc:  # soundfile's error for an unreadable format
        raise ValueError(f"cannot read {path} as audio: {exc}") from None
    audio = through_phone_line(np.ascontiguousarray(pcm[:, 0]), rate, args.codec)
    plan, node = _node(args) if args.dialplan else (None, None)
    ask = getattr(node, "ask", None)
    grammar = None
    hints: list[str] = []
    if ask is not None:
        from voicebot.speech.grammar import grammar_for_ask

        grammar = grammar_for_ask(ask)
        hints = list(ask.hints)
    elif node is not None and node.listen is not None:
        hints = list(node.listen.hints)
    asr = WhisperAsr(args.model, warm=False)
    result = asr.transcribe(audio, language=args.lang, hints=" ".join(hints) or None, grammar=grammar)
    report: dict[str, Any] = {
        "text": result.text, "language": result.language, "confidence": result.confidence,
        "duration_s": round(result.duration_s, 3), "decode_s": round(result.decode_s, 3),
        "grammar": asdict(grammar) if grammar is not None else None,
        "grammar_used": result.grammar_used, "grammar_value": result.grammar_value,
    }
    if plan is not None and node is not None:
        report.update(_understanding(args, plan, node, result))
    return report


def _node(args: argparse.Namespace) -> tuple[Any, Any]:
    from voicebot.dialplan.loader import load_dialplan

    candidate = Path(args.dialplan)
    path = candidate if candidate.suffix in (".yaml", ".yml") else Path(args.dialplans_dir) / f"{args.dialplan}.yaml"
    plan = load_dialplan(path)
    if not args.node:
        return plan, plan.nodes[plan.start]
    if args.node not in plan.nodes:
        raise ValueError(f"dialplan {plan.dialplan!r} has no node {args.node!r}; nodes: {', '.join(plan.nodes)}")
    return plan, plan.nodes[args.node]


def _understanding(args: argparse.Namespace, plan: Any, node: Any, result: Any) -> dict[str, Any]:
    """The slot value the node's ask would take, or the intent its listen would route on."""
    from voicebot.dialplan import slot_types
    from voicebot.dialplan.slots import GRAMMAR_ENTITY, extract_slot

    parsed = None
    if plan.nlu and result.text and (node.ask is None or slot_types.get(node.ask.type).uses_nlu):
        from voicebot.nlu.base import load_nlu

        parsed = load_nlu(Path(args.nlu_dir) / plan.nlu).parse(result.text, result.language)
    entities = {e.type: e.value for e in parsed.entities} if parsed else {}
    if result.grammar_value is not None:
        entities[GRAMMAR_ENTITY] = result.grammar_value
    out: dict[str, Any] = {"intent": parsed.intent if parsed else None}
    if node.ask is not None:
        value = extract_slot(node.ask, text=result.text, intent=out["intent"], entities=entities)
        out.update(slot=node.ask.slot, slot_value=value, outcome="filled" if value is not None else "nomatch")
    return out
