"""API tokens: roles admin / supervisor / agent, stored hashed (sha256 with a per-token salt), checked in constant time.

There are no default credentials: an admin creates tokens (`voicebot token create --role agent --agent a1`),
each shown once. The token file holds only ids, roles, salts and hashes, and is written with mode 0600.

    tokens = TokenStore.load("/etc/voicebot/tokens.json")
    secret = tokens.create("agent", agent="a1")          # "vbt_<id>_<secret>": give it to the agent
    principal = tokens.verify(secret)                     # Principal(role="agent", agent="a1") or None

Tokens are 256-bit random values, so a salted SHA-256 is enough (a slow KDF would only slow every request).

Changes made by another process (`voicebot token create/revoke` while the server runs) take effect at once:
:meth:`TokenStore.verify` re-reads the file whenever it changed on disk (one stat per check).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from voicebot.compliance.secrets import SecretError, check_secret_file
from typing import Literal

__all__ = ["ROLES", "Principal", "TokenRecord", "TokenStore", "TokenFileError"]

Role = Literal["admin", "supervisor", "agent"]
ROLES: tuple[str, ...] = ("admin", "supervisor", "agent")
_PREFIX = "vbt_"
log = logging.getLogger(__name__)
FileStamp = tuple[int, int, int] | None  # (inode, size, mtime ns) of the token file, None while it is missing


def _stamp(file: Path) -> FileStamp:
    try:
        info = file.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


class TokenFileError(ValueError):
    """The token file is unreadable or malformed."""


@dataclass(frozen=True)
class Principal:
    token_id: str
    role: str
    agent: str | None = None


@dataclass(frozen=True)
class TokenRecord:
    id: str
    role: str
    agent: str | None
    salt: str
    sha256: str
    label: str = ""


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


class TokenStore:
    def __init__(self, records: list[TokenRecord] | None = None, path: Path | None = None) -> None:
        self._records = {record.id: record for record in records or []}
        self.path = path
        self._stamp: FileStamp = _stamp(path) if path is not None else None  # `records` are the file's

    @classmethod
    def load(cls, path: str | Path) -> TokenStore:
        """Read a token file; a missing file is an empty store (nobody can log in until a token is created)."""
        file = Path(path)
        stamp = _stamp(file)  # before reading: a change made while reading is picked up by the next refresh()
        store = cls(_read_records(file), file)
        store._stamp = stamp
        return store

    def refresh(self) -> bool:
        """Re-read the token file if it changed on disk since it was last read or written; True when it did.

        A missing file means no tokens. A broken or insecure file raises TokenFileError once and is read again
        when it next changes (the tokens read before stay in force: the CLI replaces the file atomically, so only
        a hand edit can break it).
        """
        if self.path is None:
            return False
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        self._records = {record.id: record for record in _read_records(self.path)}
        return True

    def has(self, token_id: str) -> bool:
        """Whether a token with this id exists (as of the last read)."""
        return token_id in self._records

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump({"tokens": [asdict(r) for r in self._records.values()]}, handle, indent=1)
        os.replace(temporary, self.path)
        self._stamp = _stamp(self.path)

    def create(self, role: str, agent: str | None = None, label: str = "") -> str:
        """Make a token and return its secret text (shown once; only its hash is kept)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        if (role == "agent") != (agent is not None):
            raise ValueError("an agent token needs --agent ID, and only agent tokens take one")
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        self._records[token_id] = TokenRecord(token_id, role, agent, salt, _digest(salt, secret), label)
        self.save()
        return f"{_PREFIX}{token_id}_{secret}"

    def revoke(self, token_id: str) -> bool:
        removed = self._records.pop(token_id, None) is not None
        if removed:
            self.save()
        return removed

    def records(self) -> list[TokenRecord]:
        return list(self._records.values())

    def verify(self, token: str | None) -> Principal | None:
        """The principal a token stands for, or None (unknown id and wrong secret cost the same work)."""
        if not token or not token.startswith(_PREFIX) or len(token) > 200:
            return None
        try:
            self.refresh()
        except TokenFileError as exc:
            log.error("token file not reloaded; the tokens read before stay in force: %s", exc)
        token_id, _, secret = token[len(_PREFIX):].partition("_")
        record = self._records.get(token_id)
        salt = record.salt if record is not None else "00" * 16
        expected = record.sha256 if record is not None else "0" * 64
        if not hmac.compare_digest(_digest(salt, secret), expected) or record is None:
            return None
        return Principal(record.id, record.role, record.agent)


def _read_records(file: Path) -> list[TokenRecord]:
    """The records of a token file ([] when it does not exist); TokenFileError when unreadable or malformed."""
    if not file.exists():
        return []
    try:
        check_secret_file(file)  # token hashes are secrets too: 0600, owned by us
    except SecretError as exc:
        raise TokenFileError(str(exc)) from None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        records = [TokenRecord(**item) for item in data["tokens"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TokenFileError(f"{file}: not a voicebot token file ({exc})") from None
    for record in records:
        if record.role not in ROLES:
            raise TokenFileError(f"{file}: token {record.id} has unknown role {record.role!r}")
    return records
