"""Secrets (trunk passwords, API tokens) only from environment variables or owner-only files; never printed.

    password = read_secret(env="TRUNK_PASSWORD")                  # SecretError if unset or empty
    token = read_secret(file="/run/secrets/api_token")             # SecretError if group/world can read it
    value = read_secret(env="X", file="/etc/voicebot/x")           # env first, then the file
    secret = Secret(password); repr(secret) == "Secret('****')"    # safe in logs and tracebacks
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

__all__ = ["Secret", "SecretError", "check_secret_file", "read_secret"]

_MAX_SECRET_BYTES = 64 * 1024


class SecretError(ValueError):
    """A secret cannot be read safely; the message says which one and how to fix it."""


class Secret:
    """A secret value that does not show itself in repr/str/format; call reveal() where it is used."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        import hmac

        return isinstance(other, Secret) and hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value)))


def check_secret_file(path: str | Path) -> Path:
    """Refuse a secret file that is missing, not a regular file, owned by someone else, or readable/writable by
    group or others (mode must be like 0600 or 0400). Returns the resolved path."""
    file = Path(path)
    try:
        info = file.stat()
    except FileNotFoundError:
        raise SecretError(f"secret file {file} does not exist") from None
    except OSError as exc:
        raise SecretError(f"secret file {file} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretError(f"secret file {file} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise SecretError(
            f"secret file {file} has mode {mode:04o}: group or others may access it; "
            f"run 'chmod 600 {file}' (owner read/write only)"
        )
    if info.st_uid not in (os.geteuid(), 0):
        raise SecretError(f"secret file {file} is owned by uid {info.st_uid}, not by this user or root; "
                          f"chown it to the user running voicebot")
    return file


def read_secret(
    *,
    env: str | None = None,
    file: str | Path | None = None,
    environ: Mapping[str, str] = os.environ,
    name: str = "secret",
) -> str:
    """The secret from environment variable `env` if set, else from `file` (checked with check_secret_file).

    Trailing newlines are stripped from file contents. Raises SecretError when neither source yields a value.
    """
    if env is None and file is None:
        raise SecretError(f"{name}: name an environment variable or a secret file")
    if env is not None:
        value = environ.get(env)
        if value:
            return value
        if file is None:
            state = "is empty" if value == "" else "is not set"
            raise SecretError(f"{name}: environment variable {env} {state}; export it before starting voicebot")
    assert file is not None
    path = check_secret_file(file)
    data = path.read_bytes()
    if len(data) > _MAX_SECRET_BYTES:
        raise SecretError(f"{name}: secret file {path} is larger than {_MAX_SECRET_BYTES} bytes; is it the right file?")
    try:
        value = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise SecretError(f"{name}: secret file {path} is not UTF-8 text") from None
    if not value:
        raise SecretError(f"{name}: secret file {path} is empty")
    return value
