"""The NLU contract the dialplan session codes against: one parse per utterance, intent + entities.

Backends: `EmbeddedNlu` (voicebot.nlu.engine, trained from nlu_models/<domain>/<lang>/nlu.yml) and
`RasaHttpNlu` (voicebot.nlu.rasa_http, a running Rasa server). Both raise `NluError` subclasses on failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["Entity", "NluEngine", "NluError", "NluResult", "load_nlu"]


class NluError(Exception):
    """Any NLU failure (bad training data, unknown language, unreachable backend)."""


@dataclass(frozen=True)
class Entity:
    """One extracted entity; `text` is `utterance[start:end]`, `value` the normalised value."""

    type: str
    value: object
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class NluResult:
    """What one utterance means. `intent` is None when out of scope (confidence below threshold)."""

    text: str
    intent: str | None
    confidence: float
    entities: tuple[Entity, ...]
    lang: str
    ranking: tuple[tuple[str, float], ...] = ()

    def entity(self, type_: str) -> Entity | None:
        """The first entity of `type_`, or None."""
        return next((e for e in self.entities if e.type == type_), None)


@runtime_checkable
class NluEngine(Protocol):
    """Anything that turns text into an NluResult."""

    def parse(self, text: str, lang: str) -> NluResult: ...

    def intents(self, lang: str) -> set[str]: ...


def load_nlu(domain_dir: Path) -> NluEngine:
    """The embedded engine for nlu_models/<domain>/{en,zh}/nlu.yml; each language trains on first use."""
    from voicebot.nlu.engine import EmbeddedNlu

    return EmbeddedNlu(Path(domain_dir))
