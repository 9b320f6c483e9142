"""Writable state for `voicebot serve`, checked before anything starts: each place the node writes to (audit log,
API tokens, recordings, prompt cache) must be creatable and writable, and a failure names the path and the config
key that sets it — not "cannot listen" (a container runs as a non-root user in a root-owned working directory)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StatePath", "StatePathError", "check_writable", "state_paths"]


class StatePathError(OSError):
    """A state directory cannot be created or written; the message names the path and the setting."""


@dataclass(frozen=True)
class StatePath:
    directory: Path  # must exist (created if missing) and be writable
    setting: str  # the config key (or environment variable) that chooses it


def state_paths(config: object, cache_dir: Path, tokens_file: Path) -> list[StatePath]:
    """Every directory the node will write to under ``config`` (a ServerConfig)."""
    api = config.api
    recording = config.recording
    paths = [StatePath(Path(api.audit_log).parent, "api.audit_log"),
             StatePath(cache_dir, "--cache-dir or $VOICEBOT_CACHE")]
    if api.enabled:
        paths.append(StatePath(tokens_file.parent, "api.tokens_file"))
    if recording.enabled:
        paths.append(StatePath(Path(recording.directory), "recording.directory"))
    knowledge_cache = getattr(config, "knowledge_cache_dir", None)
    if knowledge_cache:  # the default sits beside the prompt cache; unwritable, it only costs start-up time
        paths.append(StatePath(Path(knowledge_cache), "knowledge_cache_dir"))
    records = getattr(config, "records", None)
    if records is not None and records.enabled:
        paths.append(StatePath(Path(records.path).parent, "records.path"))
    return paths


def check_writable(paths: list[StatePath]) -> None:
    """Create each directory (0700 when new) and prove it writable with a temporary file; raise
    StatePathError naming the first that fails (relative paths are shown resolved against the working
    directory)."""
    for item in paths:
        directory = item.directory if item.directory.is_absolute() else Path.cwd() / item.directory
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=directory):
                pass
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise StatePathError(
                f"cannot create or write {directory} ({reason}; running as uid {os.getuid()}): set {item.setting} "
                "to a writable path, e.g. under /var/lib/voicebot") from None
