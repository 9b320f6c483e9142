"""The knowledge index's disk cache of article vectors: a rebuild (server restart, hot reload) encodes only the
articles whose text changed; an entry from another encoder version, a damaged entry or one stored under the wrong
name is never trusted (re-encoded and rewritten); an unwritable cache costs time only.

The encoder is a small deterministic stand-in (hashed character trigrams) that counts what it encodes, so these
tests load no model; the shipped education articles are the content."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from voicebot.config import load_server_config
from voicebot.dialplan.actions import Answer
from voicebot.knowledge import retrieval
from voicebot.knowledge.articles import read_article
from voicebot.knowledge.base import load_knowledge
from voicebot.knowledge.vectorcache import (
    PRUNE_AFTER_S,
    CacheEntryError,
    VectorCache,
    entry_key,
    pack_entry,
    unpack_entry,
)
from voicebot.runtime import Runtime
from voicebot.speech.prompts import PromptCache

REPO = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 12, 7)
QUERIES = {"can I get my money back": "en", "能换到别的班吗": "zh"}
ENCODERS: dict[str, str | None] = {"en": "use-multilingual+minilm", "zh": "use-multilingual"}


class CountingEncoder:
    """Unit vectors of hashed character trigrams; `encoded` lists every text it was asked for."""

    dimension = 64

    def __init__(self, name: str) -> None:
        self.name = name
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded += texts
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            padded = f"  {text.lower()} "
            for start in range(len(padded) - 2):
                digest = hashlib.blake2b(padded[start:start + 3].encode(), digest_size=2).digest()
                out[row, int.from_bytes(digest, "big") % self.dimension] += 1.0
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


class Encoders:
    def __init__(self) -> None:
        self.models: dict[str, CountingEncoder] = {}
        self.version = "1.0"
        self.queries = 0

    def __call__(self, name: str) -> CountingEncoder:
        return self.models.setdefault(name, CountingEncoder(name))

    def encoded(self) -> int:
        """Texts encoded while building (the queries searched after a build are not counted)."""
        return sum(len(model.encoded) for model in self.models.values()) - self.queries

    def texts(self) -> set[str]:
        return {text for model in self.models.values() for text in model.encoded}

    def reset(self) -> None:
        self.models.clear()  # a fresh process: nothing encoded in memory
        self.queries = 0


@pytest.fixture
def encoders(monkeypatch: pytest.MonkeyPatch) -> Encoders:
    fake = Encoders()
    monkeypatch.setattr(retrieval, "encoder", fake)
    monkeypatch.setattr(retrieval, "encoder_id", lambda name: f"{name}:fake=={fake.version}")
    return fake


@pytest.fixture
def knowledge(tmp_path: Path) -> Path:
    root = tmp_path / "knowledge"
    shutil.copytree(REPO / "knowledge" / "education", root / "education")
    return root


def build(root: Path, cache: VectorCache | None, encoders: Encoders) -> list[tuple[str, float]]:
    """Index `root` and search it in both languages: the top hits with their scores."""
    kb = load_knowledge(root, today=TODAY, encoders=ENCODERS, cache=cache)
    before = encoders.encoded()
    hits = [(hit.article.id, hit.score) for query, lang in QUERIES.items()
            for hit in kb.search(query, lang, day=TODAY)]
    encoders.queries += encoders.encoded() - before
    return hits


def test_entries_round_trip_and_refuse_anything_damaged_or_foreign() -> None:
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    key = entry_key("use-multilingual:x==1", ["a", "b", "c"])
    blob = pack_entry(key, vectors)
    assert np.array_equal(unpack_entry(blob, key, 3, 4), vectors)
    assert entry_key("use-multilingual:x==2", ["a", "b", "c"]) != key  # another encoder version: another entry
    assert entry_key("use-multilingual:x==1", ["a", "b", "C"]) != key  # other text: another entry
    flipped = bytearray(blob)
    flipped[-1] ^= 0x40
    nan = pack_entry(key, np.full((3, 4), np.nan, dtype=np.float32))
    cases = {"cut short": blob[:-5], "bit flip": bytes(flipped), "other key": pack_entry("0" * 64, vectors),
             "garbage": b"\x00" * 40, "empty": b"", "header only": blob[:30], "non-finite": nan}
    for name, damaged in cases.items():
        with pytest.raises(CacheEntryError):
            unpack_entry(damaged, key, 3, 4)
            pytest.fail(name)
    with pytest.raises(CacheEntryError, match="shape"):
        unpack_entry(blob, key, 3, 5)


def test_a_rebuild_reads_every_vector_from_the_cache(tmp_path: Path, encoders: Encoders, knowledge: Path) -> None:
    cache = VectorCache(tmp_path / "vectors")
    first = build(knowledge, cache, encoders)
    probes = encoders.encoded()
    assert probes > 50 and cache.misses == 3 * 6 and cache.hits == 0  # 6 articles per language; 2 + 1 encoders
    encoders.reset()
    restarted = VectorCache(tmp_path / "vectors")  # a new process: same directory, nothing in memory
    assert build(knowledge, restarted, encoders) == first  # the same ranking and scores, to the last digit
    assert encoders.encoded() == 0
    assert (restarted.hits, restarted.misses, restarted.rejected) == (18, 0, 0)
    encoders.reset()
    assert build(knowledge, None, encoders) == first  # without a cache: the same answers, every probe encoded again
    assert encoders.encoded() == probes


def test_an_edited_article_alone_is_encoded_again(tmp_path: Path, encoders: Encoders, knowledge: Path) -> None:
    build(knowledge, VectorCache(tmp_path / "vectors"), encoders)
    article = knowledge / "education" / "en" / "refund-policy.md"
    article.write_text(article.read_text().replace("up to 7 days", "up to 10 days"), encoding="utf-8")
    encoders.reset()
    cache = VectorCache(tmp_path / "vectors")
    build(knowledge, cache, encoders)
    assert (cache.hits, cache.misses) == (16, 2)  # the English article, for its two encoders
    edited = set(retrieval._probes(read_article(article, "education")))
    assert encoders.texts() - set(QUERIES) == edited  # its probes, and nothing else
    assert "You get a full refund up to 10 days before the course starts." in edited


def test_a_new_encoder_version_never_reads_the_old_vectors(tmp_path: Path, encoders: Encoders,
                                                           knowledge: Path) -> None:
    build(knowledge, VectorCache(tmp_path / "vectors"), encoders)
    probes = encoders.encoded()
    encoders.reset()
    encoders.version = "2.0"
    cache = VectorCache(tmp_path / "vectors")
    build(knowledge, cache, encoders)
    assert (cache.hits, cache.misses) == (0, 18) and encoders.encoded() == probes


def test_damaged_or_misplaced_entries_are_encoded_again_and_rewritten(
        tmp_path: Path, encoders: Encoders, knowledge: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = build(knowledge, VectorCache(tmp_path / "vectors"), encoders)
    entries = sorted((tmp_path / "vectors").glob("*.vec"))
    assert len(entries) == 18 and not list((tmp_path / "vectors").glob(".*"))  # no temporary files left
    entries[0].write_bytes(entries[0].read_bytes()[:-100])  # a write cut short
    raw = bytearray(entries[1].read_bytes())
    raw[-3] ^= 0x01  # one bit rotted
    entries[1].write_bytes(bytes(raw))
    shutil.copyfile(entries[3], entries[2])  # another article's vectors under this name
    encoders.reset()
    cache = VectorCache(tmp_path / "vectors")
    with caplog.at_level(logging.WARNING, logger="voicebot.knowledge.vectorcache"):
        assert build(knowledge, cache, encoders) == first
    assert (cache.hits, cache.misses, cache.rejected) == (15, 3, 3) and encoders.encoded() > 0
    assert len([r for r in caplog.records if "ignored" in r.getMessage()]) == 3
    encoders.reset()
    again = VectorCache(tmp_path / "vectors")
    build(knowledge, again, encoders)
    assert (again.hits, again.rejected, encoders.encoded()) == (18, 0, 0)  # rewritten whole


def test_entries_no_build_reads_for_a_month_are_pruned(tmp_path: Path, encoders: Encoders,
                                                       knowledge: Path) -> None:
    directory = tmp_path / "vectors"
    build(knowledge, VectorCache(directory), encoders)
    month_ago = time.time() - PRUNE_AFTER_S - 60
    for entry in directory.iterdir():
        os.utime(entry, (month_ago, month_ago))
    leftover = directory / ".0123456789abcdef.x.tmp"  # a writer killed mid-write, long ago
    leftover.write_bytes(b"half")
    os.utime(leftover, (month_ago, month_ago))
    cache = VectorCache(directory)
    build(knowledge, cache, encoders)  # reading an entry renews it
    assert cache.hits == 18 and cache.prune() == 1 and not leftover.exists()

    article = knowledge / "education" / "zh" / "refund-policy.md"
    article.write_text(article.read_text(encoding="utf-8").replace("7天", "10天"), encoding="utf-8")
    build(knowledge, VectorCache(directory), encoders)  # the edited article: a new entry beside the old one
    assert len(list(directory.glob("*.vec"))) == 19
    assert VectorCache(directory).prune(now=time.time() + PRUNE_AFTER_S - 3600) == 0
    assert VectorCache(directory).prune(now=time.time() + PRUNE_AFTER_S + 3600) == 19  # unread for a month
    assert VectorCache(tmp_path / "missing").prune() == 0


def test_an_unwritable_cache_costs_time_not_answers(tmp_path: Path, encoders: Encoders, knowledge: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache directory should be")
    expected = build(knowledge, None, encoders)
    with caplog.at_level(logging.WARNING, logger="voicebot.knowledge.vectorcache"):
        assert build(knowledge, VectorCache(blocked), encoders) == expected
    assert VectorCache(blocked).prune() == 0
    assert [r.getMessage() for r in caplog.records].count(
        "knowledge vector cache not writable: every start encodes all articles") == 1


PLAN = """\
dialplan: kb_answer
languages: [en-US]
knowledge: education
start: refunds
nodes:
  refunds:
    answer: {from: knowledge, tags: [refunds], min_score: 0.05, then: done, nomatch: done}
  done:
    say: {en: "Anything else?"}
    hangup: true
"""


def serving(tmp_path: Path, knowledge: Path) -> Runtime:
    plans = tmp_path / "dialplans"
    plans.mkdir(exist_ok=True)
    (plans / "kb_answer.yaml").write_text(PLAN, encoding="utf-8")
    config = tmp_path / "voicebot.yaml"
    config.write_text(f"dialplans_dir: {plans}\nknowledge_dir: {knowledge}\n"
                      f"knowledge_cache_dir: {tmp_path / 'vectors'}\nrouting: {{default_dialplan: kb_answer}}\n",
                      encoding="utf-8")
    runtime = Runtime(load_server_config(config), PromptCache(tmp_path / "prompts"))
    runtime.load()
    return runtime


def spoken(runtime: Runtime) -> str:
    result = asyncio.run(runtime.answer(Answer("what is the refund policy", "en-US", "education", ("refunds",))))
    return result.hits[0].short_answer


def test_a_restarted_server_and_a_hot_reload_encode_only_what_changed(tmp_path: Path, encoders: Encoders,
                                                                      knowledge: Path) -> None:
    serving(tmp_path, knowledge)
    assert encoders.encoded() > 0 and any((tmp_path / "vectors").glob("*.vec"))
    encoders.reset()
    runtime = serving(tmp_path, knowledge)  # the restart
    assert encoders.encoded() == 0 and runtime.vectors.hits == 18
    assert spoken(runtime).startswith("You get a full refund up to 7 days")

    article = knowledge / "education" / "en" / "refund-policy.md"
    article.write_text(article.read_text().replace("up to 7 days", "up to 10 days"), encoding="utf-8")
    stat = article.stat()
    os.utime(article, (stat.st_atime + 5, stat.st_mtime + 5))
    encoders.reset()
    assert runtime.reload_changed() == ["knowledge"]
    assert spoken(runtime).startswith("You get a full refund up to 10 days")
    changed = encoders.texts()
    assert "You get a full refund up to 10 days before the course starts." in changed
    assert runtime.vectors.misses == 2 and runtime.vectors.hits == 18 + 16  # one article, two encoders
