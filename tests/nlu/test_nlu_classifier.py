"""Embedded classifier and engine: held-out accuracy (en + zh), out of scope, caching, the NluEngine contract."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from voicebot.nlu.base import NluEngine, NluError, load_nlu
from voicebot.nlu.classifier import ClassifierConfig, TrainingError, train
from voicebot.nlu.engine import EmbeddedNlu, load_language
from voicebot.nlu.rasa_data import load_nlu_data
from voicebot.yamlsrc import YamlSourceError

DEMO = Path(__file__).resolve().parents[2] / "nlu_models" / "demo"

# Utterances written for these tests, not in the training data.
HELD_OUT = {
    "en": [
        ("hello, good to talk to you", "greet"),
        ("ok thanks, bye for now", "goodbye"),
        ("please get me a human agent", "agent"),
        ("how much money is left on my savings account", "check_balance"),
        ("somebody stole my credit card", "lost_card"),
        ("sorry, could you repeat the last part", "repeat"),
        ("yes, that's correct", "affirm"),
        ("no, that is not right", "deny"),
    ],
    "zh": [
        ("您好，我想问点事", "greet"),
        ("好的谢谢，拜拜", "goodbye"),
        ("帮我转到人工客服", "agent"),
        ("我想查询一下卡里的余额", "check_balance"),
        ("我的银行卡被人偷了", "lost_card"),
        ("不好意思，请再说一遍", "repeat"),
        ("对，没错", "affirm"),
        ("不对，不是这个", "deny"),
    ],
}
OUT_OF_SCOPE = {"en": ["what is the capital of france", "zebra quantum pancake"], "zh": ["火星上有水吗", "帮我写一首诗"]}


@pytest.fixture(scope="module")
def domain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the demo domain so trained/ output stays out of the checkout."""
    target = tmp_path_factory.mktemp("nlu") / "demo"
    shutil.copytree(DEMO, target, ignore=shutil.ignore_patterns("trained"))
    return target


@pytest.fixture(scope="module")
def engine(domain: Path) -> EmbeddedNlu:
    return EmbeddedNlu(domain, clock=lambda: dt.datetime(2025, 3, 5, 10, 0))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_held_out_accuracy(engine: EmbeddedNlu, lang: str) -> None:
    results = [(engine.parse(text, lang).intent, intent) for text, intent in HELD_OUT[lang]]
    correct = sum(got == want for got, want in results)
    assert correct >= len(results) - 1, results


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_out_of_scope_gets_none(engine: EmbeddedNlu, lang: str) -> None:
    for text in OUT_OF_SCOPE[lang]:
        result = engine.parse(text, lang)
        assert result.intent is None, (text, result.ranking[:3])


def test_result_shape_and_entities(engine: EmbeddedNlu) -> None:
    result = engine.parse("my savings balance, and I lost my card tomorrow", "en-US")
    assert isinstance(engine, NluEngine)
    assert result.lang == "en"
    assert result.ranking[0] == (result.intent, pytest.approx(result.confidence, abs=1e-3))
    assert sum(p for _, p in result.ranking) == pytest.approx(1.0, abs=0.01)
    assert result.entity("account_type") is not None and result.entity("account_type").value == "savings"
    assert result.entity("date").value == "2025-03-06"
    zh = engine.parse("查一下我活期账户的余额", "zh-CN")
    assert zh.intent == "check_balance" and zh.entity("account_type").value == "checking"


def test_intents_exclude_out_of_scope(engine: EmbeddedNlu) -> None:
    for lang in ("en", "zh"):
        trained = set(load_nlu_data(DEMO / lang / "nlu.yml").intents)
        assert "out_of_scope" in trained
        assert engine.intents(lang) == trained - {"out_of_scope"}
        assert {"check_balance", "lost_card", "agent"} <= engine.intents(lang)


def test_unknown_language_is_a_clear_error(engine: EmbeddedNlu) -> None:
    with pytest.raises(NluError, match="no NLU data for language 'fr'.*have: en, zh"):
        engine.parse("bonjour", "fr")


def test_empty_text_has_no_intent(engine: EmbeddedNlu) -> None:
    assert engine.parse("   ", "en").intent is None


def test_model_cached_by_data_hash(domain: Path) -> None:
    first = load_language(domain / "en")
    again = load_language(domain / "en")
    assert not again.trained_now
    assert again.classifier.predict("hello").intent == first.classifier.predict("hello").intent
    nlu_file = domain / "en" / "nlu.yml"
    text = nlu_file.read_text(encoding="utf-8")
    nlu_file.write_text(text.replace("    - yo\n", "    - yo\n    - pip pip hooray\n", 1), encoding="utf-8")
    changed = load_language(domain / "en")
    assert changed.trained_now
    assert len(list((domain / "en" / "trained").glob("intent-*.pkl"))) == 1  # the stale model is gone


def test_unknown_entity_type_rejected(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "nlu.yml").write_text(
        "nlu:\n- intent: a\n  examples: |\n    - hi\n    - I am [Bob](person)\n- intent: b\n  examples: |\n    - bye\n",
        encoding="utf-8",
    )
    with pytest.raises(YamlSourceError, match=r"nlu.yml:5: unknown entity type 'person'.*lookup: person"):
        load_nlu(tmp_path).parse("hi", "en")


def test_training_needs_two_intents() -> None:
    with pytest.raises(TrainingError, match="at least two intents"):
        train([("hi", "greet"), ("hello", "greet")])


def test_confidence_is_calibrated_on_training_like_data() -> None:
    data = load_nlu_data(DEMO / "en" / "nlu.yml")
    model = train([(e.text, e.intent) for e in data.examples], ClassifierConfig(lang="en"))
    assert 0.05 < model.temperature < 5.0
    assert model.predict("I lost my card").confidence > model.predict("hmm well").confidence


def test_linear_svm_estimator_also_classifies() -> None:
    data = load_nlu_data(DEMO / "zh" / "nlu.yml")
    model = train([(e.text, e.intent) for e in data.examples], ClassifierConfig(lang="zh", estimator="linear_svm"))
    hits = sum(model.predict(text).intent == intent for text, intent in HELD_OUT["zh"])
    assert hits >= len(HELD_OUT["zh"]) - 1
    with pytest.raises(TrainingError, match="unknown estimator 'forest'"):
        train([("hi", "a"), ("bye", "b")], ClassifierConfig(estimator="forest"))
