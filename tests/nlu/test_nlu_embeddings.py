"""Sentence embeddings: the numpy BERT and USE encoders, the cache, and the classifier with and without them."""

from __future__ import annotations

import datetime as dt
import json
import pickle
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from voicebot.nlu import classifier as classifier_module
from voicebot.nlu.classifier import ClassifierConfig, IntentClassifier, SentenceEmbeddings, TrainingError, train
from voicebot.nlu.embeddings import (
    CachedEncoder,
    EmbeddingError,
    MiniLmEncoder,
    available_encoder,
    encoder,
    read_safetensors,
)
from voicebot.nlu.engine import EmbeddedNlu

DEMO = Path(__file__).resolve().parents[2] / "nlu_models" / "demo"


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header: dict[str, dict[str, object]] = {}
    blobs: list[bytes] = []
    offset = 0
    for name, array in tensors.items():
        blob = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def tiny_bert(directory: Path, hidden: int = 8, layers: int = 2) -> Path:
    """A random 2-layer BERT with a word-level tokenizer, in the all-MiniLM-L6-v2 file layout."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "lost", "my", "card", "balance", "please", "the"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(directory / "tokenizer.json"))
    rng = np.random.default_rng(0)
    tensors = {
        "embeddings.word_embeddings.weight": rng.normal(size=(len(words), hidden)),
        "embeddings.position_embeddings.weight": rng.normal(size=(16, hidden)),
        "embeddings.token_type_embeddings.weight": rng.normal(size=(2, hidden)),
        "embeddings.LayerNorm.weight": np.ones(hidden), "embeddings.LayerNorm.bias": np.zeros(hidden),
    }
    for layer in range(layers):
        p = f"encoder.layer.{layer}."
        shapes = {
            "attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
            "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
            "intermediate.dense": (2 * hidden, hidden), "output.dense": (hidden, 2 * hidden),
        }
        for name, shape in shapes.items():
            tensors[p + name + ".weight"] = rng.normal(size=shape) / np.sqrt(shape[1])
            tensors[p + name + ".bias"] = rng.normal(size=shape[0]) * 0.1
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            tensors[p + norm + ".weight"] = np.ones(hidden)
            tensors[p + norm + ".bias"] = np.zeros(hidden)
    write_safetensors(directory / "model.safetensors", {"bert." + k: v for k, v in tensors.items()})
    (directory / "config.json").write_text(json.dumps({
        "hidden_size": hidden, "num_attention_heads": 2, "num_hidden_layers": layers, "layer_norm_eps": 1e-12,
    }))
    return directory


def test_read_safetensors_round_trip(tmp_path: Path) -> None:
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1.5], dtype=np.float32)}
    write_safetensors(tmp_path / "x.safetensors", tensors)
    loaded = read_safetensors(tmp_path / "x.safetensors")
    assert set(loaded) == {"a", "b"}
    np.testing.assert_array_equal(loaded["a"], tensors["a"])
    np.testing.assert_array_equal(loaded["b"], tensors["b"])


def test_read_safetensors_rejects_unknown_dtype(tmp_path: Path) -> None:
    header = json.dumps({"q": {"dtype": "I8", "shape": [1], "data_offsets": [0, 1]}}).encode()
    (tmp_path / "q.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\x01")
    with pytest.raises(EmbeddingError, match="tensor q has unsupported dtype I8"):
        read_safetensors(tmp_path / "q.safetensors")


def test_minilm_forward_pass_on_a_tiny_bert(tmp_path: Path) -> None:
    model = MiniLmEncoder(tiny_bert(tmp_path), max_tokens=6)
    texts = ["lost my card", "my balance please", "card lost my", "lost my card"]
    vectors = model.encode(texts)
    assert vectors.shape == (4, 8) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[3], rtol=1e-6)  # deterministic
    np.testing.assert_allclose(model.encode(["lost my card"])[0], vectors[0], rtol=1e-5)  # batch = single
    assert not np.allclose(vectors[0], vectors[2], atol=1e-3)  # word order (positions) matters
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)
    long_text = " ".join(["the"] * 40)
    assert np.isfinite(model.encode([long_text])).all()  # truncated to max_tokens, not an index error


def test_use_multilingual_puts_paraphrases_closer_across_languages() -> None:
    model = encoder("use-multilingual")
    lost_en, lost_zh, balance_zh, weather = model.encode(
        ["I lost my bank card", "我的银行卡丢了", "查一下账户余额", "it will rain tomorrow"]
    )
    assert lost_en @ lost_zh > 0.6
    assert lost_zh @ lost_en > lost_zh @ balance_zh + 0.2
    assert lost_en @ weather < 0.3


class CountingEncoder:
    name = "counting"
    dimension = 2

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)


def test_cache_encodes_each_text_once_and_evicts_oldest() -> None:
    inner = CountingEncoder()
    cached = CachedEncoder(inner, size=2)
    first = cached.encode(["a", "bb", "a"])
    assert inner.seen == ["a", "bb"]
    np.testing.assert_array_equal(first[:, 0], [1, 2, 1])
    cached.encode(["bb"])
    assert inner.seen == ["a", "bb"]
    cached.encode(["ccc"])  # evicts "a", the least recently used
    cached.encode(["a"])
    assert inner.seen == ["a", "bb", "ccc", "a"]


def test_unknown_encoder_is_a_clear_error() -> None:
    with pytest.raises(EmbeddingError, match="unknown sentence encoder 'bert-huge'; known: minilm, use-multilingual"):
        encoder("bert-huge")
    with pytest.raises(TrainingError, match="unknown embedding 'bert-huge'"):
        ClassifierConfig(embedding="bert-huge")
    with pytest.raises(TrainingError, match="embedding_weight must be positive"):
        ClassifierConfig(embedding_weight=0)


def test_auto_embedding_on_when_installed_and_off_when_not(monkeypatch: pytest.MonkeyPatch) -> None:
    assert available_encoder("zh") == "use-multilingual"
    assert ClassifierConfig(lang="en").embedding == "use-multilingual"
    assert available_encoder("xx") is None
    monkeypatch.setattr(classifier_module, "available_encoder", lambda lang: None)
    assert ClassifierConfig(lang="en").embedding is None
    assert ClassifierConfig(lang="en", embedding=None).embedding is None


TRAINING = [
    *[(t, "lost_card") for t in ["I lost my card", "my card is lost", "I can't find my card", "card went missing",
                                 "where is my card, I lost it", "lost card please block it"]],
    *[(t, "check_balance") for t in ["what is my balance", "check my balance", "how much is in my account",
                                     "account balance please", "tell me my balance", "balance inquiry"]],
    *[(t, "greet") for t in ["hello", "hi there", "good morning", "hey", "hello there", "good afternoon"]],
]


def embedding_columns(model: IntentClassifier) -> list[str]:
    return [name for name, part in model.pipeline.named_steps["features"].transformer_list
            if isinstance(part, SentenceEmbeddings)]


def test_embeddings_generalise_beyond_shared_words() -> None:
    """No training sentence shares a content word with these; only the embedding model can relate them."""
    unseen = [("someone stole my wallet with the visa inside", "lost_card"),
              ("how many dollars do I have", "check_balance")]
    with_embeddings = train(TRAINING, ClassifierConfig(lang="en", embedding="use-multilingual"))
    tfidf_only = train(TRAINING, ClassifierConfig(lang="en", embedding=None))
    assert embedding_columns(with_embeddings) == ["embedding"] and embedding_columns(tfidf_only) == []
    assert [with_embeddings.predict(text).intent for text, _ in unseen] == [intent for _, intent in unseen]
    assert sum(tfidf_only.predict(text).intent == intent for text, intent in unseen) < len(unseen)


def test_saved_model_keeps_only_the_encoder_name(tmp_path: Path) -> None:
    model = train(TRAINING, ClassifierConfig(lang="en", embedding="use-multilingual"))
    path = tmp_path / "model.pkl"
    model.save(path)
    assert path.stat().st_size < 2_000_000  # the 30 MB of USE weights are not in the pickle
    loaded = IntentClassifier.load(path)
    text = "please block my lost card"
    assert loaded.predict(text) == model.predict(text)
    assert pickle.loads(pickle.dumps(SentenceEmbeddings("use-multilingual", 2.0))).weight == 2.0


@pytest.mark.parametrize("embedding", [None, "use-multilingual"])
def test_engine_both_paths_calibrated_with_out_of_scope(tmp_path: Path, embedding: str | None) -> None:
    shutil.copytree(DEMO, tmp_path / "demo", ignore=shutil.ignore_patterns("trained"))
    engine = EmbeddedNlu(tmp_path / "demo", clock=lambda: dt.datetime(2025, 3, 5), embedding=embedding)
    model = engine.model("zh").classifier
    assert model.config.embedding == embedding
    assert 0.05 < model.temperature < 5.0
    assert engine.parse("我的银行卡被人偷了", "zh").intent == "lost_card"
    assert engine.parse("帮我转到人工客服", "zh").intent == "agent"
    assert engine.parse("火星上有水吗", "zh").intent is None
    sure, unsure = engine.parse("我的卡丢了", "zh"), engine.parse("嗯", "zh")
    assert sure.confidence > unsure.confidence


def test_model_key_names_the_encoder_and_its_package_version(monkeypatch: pytest.MonkeyPatch) -> None:
    from voicebot.nlu.classifier import model_key

    embedded = ClassifierConfig(lang="en", embedding="use-multilingual")
    plain = ClassifierConfig(lang="en", embedding=None)
    key = model_key(TRAINING, embedded)
    assert key != model_key(TRAINING, plain)
    monkeypatch.setattr(classifier_module, "encoder_version", lambda name: f"{name}==9.9")
    assert model_key(TRAINING, embedded) != key  # a new encoder release retrains
