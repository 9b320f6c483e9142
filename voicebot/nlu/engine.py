"""`EmbeddedNlu`: the in-process NLU engine — one trained classifier and entity extractor per language.

Training data lives in <domain_dir>/<lang>/nlu.yml; trained models are cached in <domain_dir>/<lang>/trained/
under a hash of the data, so a language trains on first use and again only when its data changes.
Thread-safe: the session parses from an executor thread.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from voicebot.nlu.base import NluError, NluResult
from voicebot.nlu.classifier import AUTO, ClassifierConfig, IntentClassifier, TrainingError, model_key, train
from voicebot.nlu.entities import BUILTIN_TYPES, DataPatterns, entity_types, extract_entities
from voicebot.nlu.rasa_data import NluData, load_nlu_data
from voicebot.yamlsrc import YamlSourceError

__all__ = ["EmbeddedNlu", "LanguageModel", "base_language", "check_entity_types", "load_language"]

TRAINED_DIR = "trained"


def to_simplified(text: str) -> str:
    """Traditional → simplified Chinese (zhconv); text without Chinese characters is returned unchanged."""
    import zhconv

    return zhconv.convert(text, "zh-cn")


def base_language(lang: str) -> str:
    """'en-US' -> 'en', 'zh_CN' -> 'zh', 'ZH' -> 'zh'."""
    return lang.replace("_", "-").split("-")[0].lower()


@dataclass(frozen=True)
class LanguageModel:
    """Everything needed to parse one language."""

    lang: str
    data: NluData
    classifier: IntentClassifier
    patterns: DataPatterns
    trained_now: bool  # False when loaded from the cache


def check_entity_types(data: NluData) -> None:
    """Reject annotations of entity types the embedded extractors can never produce."""
    known = entity_types(DataPatterns(data.regexes, data.lookups, data.synonyms))
    for kind in sorted(data.entity_types - known):
        raise YamlSourceError(
            data.source, data.entity_lines.get(kind) or None, None,
            f"unknown entity type {kind!r}",
            f"use a built-in type ({', '.join(sorted(BUILTIN_TYPES))}) or add a 'regex: {kind}' or "
            f"'lookup: {kind}' section",
        )


def load_language(
    lang_dir: Path,
    config: ClassifierConfig | None = None,
    progress: Callable[[str], None] | None = None,
    force: bool = False,
) -> LanguageModel:
    """Read <lang_dir>/nlu.yml and load its cached model, training (and caching) it when missing or stale."""
    lang = lang_dir.name
    data = load_nlu_data(lang_dir / "nlu.yml")
    check_entity_types(data)
    config = config or ClassifierConfig(lang=lang)
    examples = [(example.text, example.intent) for example in data.examples]
    path = lang_dir / TRAINED_DIR / f"intent-{model_key(examples, config)}.pkl"
    trained_now = force or not path.exists()
    classifier = None
    if not trained_now:
        try:
            classifier = IntentClassifier.load(path)
        except (OSError, EOFError, TrainingError, ValueError, AttributeError, ImportError):
            trained_now = True  # unreadable or from another library version: rebuild
    if classifier is None:
        try:
            classifier = train(examples, config, progress)
        except TrainingError as exc:
            raise NluError(f"{data.source}: {exc}") from exc
        for stale in path.parent.glob("intent-*.pkl"):
            stale.unlink(missing_ok=True)
        classifier.save(path)
    patterns = DataPatterns(data.regexes, data.lookups, data.synonyms)
    return LanguageModel(lang, data, classifier, patterns, trained_now)


class EmbeddedNlu:
    """NluEngine over nlu_models/<domain>/{en,zh}/nlu.yml; languages train lazily on first use."""

    def __init__(
        self,
        domain_dir: Path,
        threshold: float | None = None,
        clock: Callable[[], dt.datetime] = dt.datetime.now,
        estimator: str = "logreg",
        embedding: str | None = AUTO,
    ) -> None:
        """`embedding`: sentence encoder joined to TF-IDF ("auto": best installed, None: TF-IDF only)."""
        self.domain_dir = Path(domain_dir)
        self.estimator = estimator
        self.embedding = embedding
        if not self.domain_dir.is_dir():
            raise NluError(f"{self.domain_dir}: NLU domain directory not found")
        self.threshold = threshold
        self.clock = clock
        self._models: dict[str, LanguageModel] = {}
        self._lock = threading.Lock()

    @property
    def languages(self) -> list[str]:
        """Languages with training data in the domain directory."""
        return sorted(p.parent.name for p in self.domain_dir.glob("*/nlu.yml"))

    def model(self, lang: str) -> LanguageModel:
        """The language's model, trained or loaded on first use."""
        code = base_language(lang)
        with self._lock:
            model = self._models.get(code)
            if model is None:
                lang_dir = self.domain_dir / code
                if not (lang_dir / "nlu.yml").is_file():
                    raise NluError(
                        f"no NLU data for language {lang!r} in {self.domain_dir} "
                        f"(have: {', '.join(self.languages) or 'none'})"
                    )
                config = ClassifierConfig(lang=code, estimator=self.estimator, embedding=self.embedding)
                if self.threshold is not None:
                    config = replace(config, threshold=self.threshold)
                model = load_language(lang_dir, config)
                self._models[code] = model
            return model

    def intents(self, lang: str) -> set[str]:
        return self.model(lang).classifier.intents

    def parse(self, text: str, lang: str, now: dt.datetime | None = None) -> NluResult:
        """Classify `text` and extract its entities; relative dates are resolved against `now`."""
        model = self.model(lang)
        code = base_language(lang)
        if code == "zh":
            text = to_simplified(text)  # Whisper often writes traditional characters; the training data is simplified
        prediction = model.classifier.predict(text) if text.strip() else None
        entities = extract_entities(text, code, now or self.clock(), model.patterns)
        if prediction is None:
            return NluResult(text, None, 0.0, entities, code)
        return NluResult(
            text, prediction.intent, round(prediction.confidence, 4), entities, code, prediction.ranking
        )
