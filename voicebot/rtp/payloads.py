"""Audio derived once from shared immutable audio (prompts, hold music) and shared by every call playing it.

    payload = encode_shared(codec, pcm)            # G.711 bytes, the same object for every call playing `pcm`
    wire = SharedAudio(...).get(pcm, tag, compute) # any derived value (e.g. the 8 kHz resampling, read-only)

Only immutable audio is cached: a read-only array whose memory belongs to a read-only array (or to bytes), such
as a PromptCache rendering, hold audio, or a slice of one (a trimmed prompt is a new view each time). It is keyed
by the owner's identity plus the view's offset, length and stride, with a weak reference to the owner so a
recycled id never returns another array's value. Writable arrays are computed every time. Bounded LRU.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any, Callable, Hashable, TypeVar, cast

import numpy as np
import numpy.typing as npt

from .g711 import Codec

__all__ = ["EncodedPayloads", "SharedAudio", "encode_shared", "immutable_key", "shared_payloads"]

Pcm = npt.NDArray[np.int16]
T = TypeVar("T")


def immutable_key(pcm: np.ndarray) -> tuple[Any, tuple[int, int, int, int]] | None:
    """(owner, (id(owner), byte offset, length, stride)) when `pcm` is a read-only view of immutable memory."""
    if pcm.flags.writeable or pcm.ndim != 1:
        return None
    owner: Any = pcm
    while isinstance(owner, np.ndarray) and owner.base is not None:
        owner = owner.base
        if isinstance(owner, np.ndarray) and owner.flags.writeable:
            return None  # the memory can still change through a writable array
    if isinstance(owner, np.ndarray):
        offset = pcm.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
    elif isinstance(owner, bytes):
        offset = pcm.__array_interface__["data"][0]  # bytes never move while referenced
    else:
        return None  # e.g. a bytearray or mmap: mutable
    return owner, (id(owner), offset, len(pcm), pcm.strides[0])


class SharedAudio:
    """A bounded LRU of values derived from immutable audio: `get(pcm, tag, compute)`."""

    def __init__(self, max_items: int = 512, max_bytes: int = 32 * 1024 * 1024,
                 size: Callable[[Any], int] = len) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError(f"max_items and max_bytes must be positive, got {max_items}, {max_bytes}")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._size = size
        self._items: OrderedDict[tuple[Hashable, ...], tuple[Any, Any, int]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, pcm: np.ndarray, tag: Hashable, compute: Callable[[np.ndarray], T]) -> T:
        """`compute(pcm)`, from the cache when `pcm` is immutable audio already seen with this `tag`."""
        found_key = immutable_key(pcm)
        if found_key is None:
            return compute(pcm)
        owner, identity = found_key
        key = (*identity, tag)
        found = self._items.get(key)
        if found is not None:
            if found[0]() is owner:
                self._items.move_to_end(key)
                self.hits += 1
                return cast(T, found[1])
            self._drop(key)  # a dead owner's id reused by another one
        self.misses += 1
        value = compute(pcm)
        size = self._size(value)
        ref: Callable[[], Any]
        try:
            ref = weakref.ref(owner)
        except TypeError:  # bytes cannot be weakly referenced: keep them alive with the entry instead
            ref = _Strong(owner)
        if size <= self.max_bytes:
            self._items[key] = (ref, value, size)
            self._bytes += size
            while len(self._items) > self.max_items or self._bytes > self.max_bytes:
                self._drop(next(iter(self._items)))
        return value

    def _drop(self, key: tuple[Hashable, ...]) -> None:
        _ref, _value, size = self._items.pop(key)
        self._bytes -= size


class _Strong:
    """A strong reference with the weakref call interface."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __call__(self) -> Any:
        return self._target


class EncodedPayloads(SharedAudio):
    """Codec payloads of immutable audio, keyed per codec."""

    def encode(self, codec: Codec, pcm: Pcm) -> bytes:
        """`codec.encode(pcm)`, from the cache when `pcm` is immutable audio encoded before with this codec."""
        return self.get(pcm, codec.name, codec.encode)


_shared = EncodedPayloads()


def encode_shared(codec: Codec, pcm: Pcm) -> bytes:
    """Encode with the process-wide cache (see the module docstring)."""
    return _shared.encode(codec, pcm)


def shared_payloads() -> EncodedPayloads:
    """The process-wide payload cache (stats, tests)."""
    return _shared
