"""`voicebot token create|list|revoke`: manage API tokens (there are no default credentials).

    voicebot token create --role agent --agent a1      # prints the token once; only its hash is stored
    voicebot token create --role supervisor --label "night shift"
    voicebot token list  |  voicebot token revoke ID

Paths come from the server's configuration (--config, default sip_config/voicebot.yaml), as `voicebot serve`
reads them: the token file is api.tokens_file, else $VOICEBOT_TOKENS_FILE, else ~/.config/voicebot/tokens.json
(written with mode 0600; --file overrides); changes are audited in api.audit_log, the server's own hash chain (one
lock serialises both writers); agent tokens are only made for agents listed in queues.agents_file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from voicebot.api.tokens import ROLES, TokenFileError, TokenStore

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "sip_config" / "voicebot.yaml"  # as `voicebot serve`

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
    token.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                       help="server YAML whose api.tokens_file, api.audit_log and queues.agents_file are used "
                            "(default: %(default)s)")
    token.add_argument("--file", type=Path, default=None, help="token file (default api.tokens_file, else "
                                                               "$VOICEBOT_TOKENS_FILE or ~/.config/voicebot/tokens.json)")
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


class CliConfigError(ValueError):
    """The server configuration the token command needs cannot be read."""


def _server_config(args: argparse.Namespace) -> Any:
    from voicebot.config import load_server_config
    from voicebot.yamlsrc import ConfigErrors, YamlSourceError

    cached = getattr(args, "_server_config", None)
    if cached is None:
        try:
            cached = load_server_config(args.config)
        except (ConfigErrors, YamlSourceError, OSError) as exc:
            raise CliConfigError(f"cannot read the server configuration {args.config}: {exc}") from None
        args._server_config = cached
    return cached


def _store(args: argparse.Namespace) -> TokenStore:
    configured = _server_config(args).api.tokens_file
    return TokenStore.load(args.file or configured or default_tokens_path())


def check_agent_exists(agent: str, agents_file: str | Path) -> None:
    """ValueError unless ``agent`` is an agent id in ``agents_file`` (a token for nobody must not be made)."""
    from voicebot.queues.models import load_agents
    from voicebot.yamlsrc import ConfigErrors, YamlSourceError

    try:
        known = [item.id for item in load_agents(agents_file).agents]
    except (ConfigErrors, YamlSourceError, OSError) as exc:
        raise ValueError(f"cannot check agent {agent!r} against {agents_file}: {exc}") from None
    if agent not in known:
        raise ValueError(f"no agent {agent!r} in {agents_file}; known agents: {', '.join(known) or 'none'}")


def _create(args: argparse.Namespace) -> int:
    try:
        if args.agent is not None:
            check_agent_exists(args.agent, _server_config(args).queues.agents_file)
        store = _store(args)
        secret = store.create(args.role, args.agent, args.label)
    except (TokenFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(secret)
    print(f"saved (hashed) in {store.path}; this token is not shown again", file=sys.stderr)
    token_id = secret.split("_")[1] if secret.count("_") >= 2 else "?"
    _audit(args, "token.create", token_id, role=args.role, agent=args.agent, label=args.label)
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        store = _store(args)
    except (TokenFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for record in store.records():
        print(f"{record.id}  {record.role:10}  {record.agent or '-':8}  {record.label}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    try:
        removed = _store(args).revoke(args.id)
    except (TokenFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not removed:
        print(f"error: no token {args.id!r}", file=sys.stderr)
        return 1
    _audit(args, "token.revoke", args.id)
    return 0


def _audit(args: argparse.Namespace, action: str, target: str, **details: Any) -> None:
    """Admin changes go to the server's append-only audit log (api.audit_log of --config)."""
    from voicebot.compliance.audit import AuditLog

    actor = f"cli:{os.environ.get('USER') or os.getuid()}"
    with AuditLog(_server_config(args).api.audit_log) as log:
        log.record(actor, action, target, **{k: v for k, v in details.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voicebot")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
