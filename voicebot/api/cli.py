"""`voicebot token create|list|revoke`: manage API tokens (there are no default credentials).

    voicebot token create --role agent --agent a1      # prints the token once; only its hash is stored
    voicebot token create --role supervisor --label "night shift"
    voicebot token list  |  voicebot token revoke ID

The token file is $VOICEBOT_TOKENS_FILE, else ~/.config/voicebot/tokens.json (written with mode 0600).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from voicebot.api.tokens import ROLES, TokenFileError, TokenStore

__all__ = ["default_tokens_path", "main", "register"]


def default_tokens_path() -> Path:
    configured = os.environ.get("VOICEBOT_TOKENS_FILE")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "voicebot" / "tokens.json"


def register(subparsers: Any) -> None:
    """Add `token` (create, list, revoke) to an argparse subparsers object."""
    token = subparsers.add_parser("token", help="create, list or revoke API tokens")
    token.add_argument("--file", type=Path, default=None, help="token file (default $VOICEBOT_TOKENS_FILE or ~/.config/voicebot/tokens.json)")
    actions = token.add_subparsers(dest="token_command", required=True)
    create = actions.add_parser("create", help="make a token and print it once")
    create.add_argument("--role", choices=ROLES, required=True)
    create.add_argument("--agent", help="agent id (required for --role agent)")
    create.add_argument("--label", default="", help="a note to recognise the token by")
    create.set_defaults(func=_create)
    listing = actions.add_parser("list", help="show token ids, roles and agents (never secrets)")
    listing.set_defaults(func=_list)
    revoke = actions.add_parser("revoke", help="delete a token by id")
    revoke.add_argument("id")
    revoke.set_defaults(func=_revoke)


def _store(args: argparse.Namespace) -> TokenStore:
    return TokenStore.load(args.file or default_tokens_path())


def _create(args: argparse.Namespace) -> int:
    try:
        store = _store(args)
        secret = store.create(args.role, args.agent, args.label)
    except (TokenFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(secret)
    print(f"saved (hashed) in {store.path}; this token is not shown again", file=sys.stderr)
    token_id = secret.split("_")[1] if secret.count("_") >= 2 else "?"
    _audit("token.create", token_id, role=args.role, agent=args.agent, label=args.label)
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        store = _store(args)
    except TokenFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for record in store.records():
        print(f"{record.id}  {record.role:10}  {record.agent or '-':8}  {record.label}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    try:
        removed = _store(args).revoke(args.id)
    except TokenFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not removed:
        print(f"error: no token {args.id!r}", file=sys.stderr)
        return 1
    _audit("token.revoke", args.id)
    return 0


def _audit(action: str, target: str, **details: Any) -> None:
    """Admin changes go to the append-only audit log ($VOICEBOT_AUDIT_LOG, default var/audit/audit.jsonl)."""
    from voicebot.compliance.audit import AuditLog

    path = os.environ.get("VOICEBOT_AUDIT_LOG") or "var/audit/audit.jsonl"
    actor = f"cli:{os.environ.get('USER') or os.getuid()}"
    AuditLog(path).record(actor, action, target, **{k: v for k, v in details.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voicebot")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
