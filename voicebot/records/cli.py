"""`voicebot records list|show`: read the call records the server writes as calls go (voicebot/records/store.py)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from voicebot.records.store import RecordStoreError, SqliteRecordStore

__all__ = ["register"]


def register(subparsers: Any) -> None:
    records = subparsers.add_parser("records", help="call records written as the calls went")
    records.add_argument("--config", help="server YAML whose records.path to read (default: the demo config)")
    records.add_argument("--db", type=Path, help="the SQLite file itself (overrides --config)")
    actions = records.add_subparsers(dest="records_command", required=True)
    listing = actions.add_parser("list", help="the latest calls, newest first")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show", help="one call's events in order")
    show.add_argument("call_id")
    show.add_argument("--json", action="store_true")
    records.set_defaults(func=main)


def _store_path(args: argparse.Namespace) -> Path:
    if args.db is not None:
        return Path(args.db)
    from voicebot.cli import DEFAULT_CONFIG
    from voicebot.config import load_server_config

    return Path(load_server_config(args.config or DEFAULT_CONFIG).records.path)


def _when(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t).isoformat(sep=" ", timespec="seconds") if t else "-"


def main(args: argparse.Namespace) -> int:
    path = _store_path(args)
    if not path.exists():
        print(f"voicebot records: no call records at {path} (the server writes them there as calls go)",
              file=sys.stderr)
        return 2
    try:
        store = SqliteRecordStore(path)
    except RecordStoreError as exc:
        print(f"voicebot records: {exc}", file=sys.stderr)
        return 2
    try:
        if args.records_command == "list":
            calls = store.calls(limit=args.limit)
            if args.json:
                print(json.dumps(calls, ensure_ascii=False, indent=2))
            for call in [] if args.json else calls:
                state = call["outcome"] or ("in progress or lost" if call["ended_at"] is None else "-")
                print(f"{_when(call['started_at'])}  {call['call_id']}  {call['dialplan'] or '-'}  "
                      f"last node {call['node'] or '-'}  {state}")
            return 0
        events = store.events(args.call_id)
        if not events:
            print(f"voicebot records: no call {args.call_id!r} in {path}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps([event.__dict__ for event in events], ensure_ascii=False, indent=2))
            return 0
        for event in events:
            text = event.data.get("text", "")
            print(f"{event.seq:4d}  {_when(event.t)}  {event.kind:<14} {text}")
        return 0
    finally:
        store.close()
