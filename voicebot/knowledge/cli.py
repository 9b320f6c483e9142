"""`voicebot kb search "question" [--lang zh] [--tags a,b] [--collection finance] [--json]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from voicebot.yamlsrc import ConfigErrors, YamlSourceError

__all__ = ["register"]

DEFAULT_KNOWLEDGE = Path(__file__).resolve().parents[2] / "knowledge"


def register(subparsers: Any) -> None:
    kb = subparsers.add_parser("kb", help="the knowledge base: search articles")
    commands = kb.add_subparsers(dest="kb_command", required=True)
    search = commands.add_parser("search", help="the best articles for a question, with their scores")
    search.add_argument("query")
    search.add_argument("--lang", default="en", help="en or zh (default en)")
    search.add_argument("--tags", default="", help="comma-separated: only articles with one of these tags")
    search.add_argument("--collection", help="only this collection (industry), e.g. finance")
    search.add_argument("-k", type=int, default=3, help="how many (default 3)")
    search.add_argument("--knowledge-dir", type=Path, default=DEFAULT_KNOWLEDGE)
    search.add_argument("--json", action="store_true", help="print JSON")
    search.set_defaults(func=_search)


def _search(args: argparse.Namespace) -> int:
    from voicebot.knowledge.articles import describe
    from voicebot.knowledge.base import load_knowledge
    from voicebot.knowledge.vectorcache import VectorCache, default_cache_dir

    try:
        kb = load_knowledge(args.knowledge_dir, cache=VectorCache(default_cache_dir()))
    except (ConfigErrors, YamlSourceError) as exc:
        print(f"voicebot: the knowledge base is not valid:\n{exc}", file=sys.stderr)
        return 1
    tags = [tag.strip() for tag in args.tags.split(",") if tag.strip()]
    hits = kb.search(args.query, args.lang, collection=args.collection, tags=tags, k=args.k)
    if args.json:
        print(json.dumps([{**describe(hit.article), "score": hit.score} for hit in hits], ensure_ascii=False,
                         indent=2))
        return 0
    if not hits:
        print("no article matches (check --lang, --tags, --collection)")
        return 1
    for hit in hits:
        meta = hit.article.meta
        print(f"{hit.score:.3f}  {meta.id} v{meta.version}  [{hit.article.collection}/{meta.lang}] {meta.title}")
        print(f"       {meta.short_answer}")
    return 0
