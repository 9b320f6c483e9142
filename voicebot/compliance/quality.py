"""Live quality checks of a call (质检): the industry policy applied to what is said while it is said.

Pure logic, fed as the call goes: `heard()` with each finished utterance of the caller, the bot or the agent
(text and times in seconds from any common clock), the call's steps (`answered`, `queued`, `left_queue`,
`agent_answered`, `transcribing`, `ended`), and `tick(now)` about once a second for the rules that fire on time
passing. Each call returns the alerts raised by that input, so a supervisor sees them within a tick; `report()` gives
the per-call score and every alert.

Rules (from policies/<industry>.yaml, see compliance/lint.py):
- forbidden phrases, said by the bot or by the agent ("guaranteed returns", 保本保息, "your diagnosis is");
- required disclaimers: an utterance touching the topic (`before.say_contains`) before any disclaimer phrase was
  said in the call by the bot or the agent;
- `quality:` limits (voicebot.compliance.timing, the strictest of the applying policies): dead air (`max_silence_s`:
  the bot owing the caller a reply, or nobody speaking on a bridged call), a wait in a queue without an announcement
  or an agent (`max_hold_s`), the agent talking over the caller (`talk_over_ms`); each once per episode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from voicebot.compliance.lint import Policy, normalise, phrase_pattern
from voicebot.compliance.alerts import QualityAlert
from voicebot.compliance.timing import Span, TimedLimits, TimedRules

__all__ = ["PENALTY", "SPEAKERS", "LiveQualityCheck", "QualityAlert", "QualityReport", "Said"]

SPEAKERS = ("caller", "bot", "agent")
PENALTY = {"forbidden_phrase": 30, "missing_disclaimer": 25, "long_hold": 10, "long_silence": 10, "talk_over": 5}


@dataclass(frozen=True)
class Said:
    """One finished utterance: who said it, the (redacted) words, when it started and ended (seconds)."""

    speaker: str
    text: str
    start: float
    end: float

    def __post_init__(self) -> None:
        if self.speaker not in SPEAKERS:
            raise ValueError(f"speaker must be one of {SPEAKERS}, not {self.speaker!r}")
        if self.end < self.start:
            raise ValueError("an utterance cannot end before it starts")


@dataclass(frozen=True)
class QualityReport:
    score: int
    alerts: tuple[QualityAlert, ...]
    disclaimers_said: tuple[str, ...]


@dataclass
class _Disclaimer:
    policy: str
    name: str
    topic: list[re.Pattern[str]]
    phrases: list[re.Pattern[str]]
    said: bool = False
    flagged: bool = False


@dataclass
class _Forbidden:
    policy: str
    phrase: str
    reason: str | None
    pattern: re.Pattern[str]


@dataclass
class LiveQualityCheck:
    """The checks of one call under `policies` (those that apply to its dialplan, see lint.policies_for)."""

    policies: list[Policy]
    _alerts: list[QualityAlert] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._forbidden = [_Forbidden(p.policy, item.phrase, item.reason, phrase_pattern(item.phrase))
                           for p in self.policies for item in p.forbidden_phrases]
        self._disclaimers = [_Disclaimer(p.policy, rule.name, [phrase_pattern(k) for k in rule.before.say_contains],
                                         [phrase_pattern(d) for d in rule.disclaimer])
                             for p in self.policies for rule in p.required_disclaimers]
        limits = [(p.policy, p.quality) for p in self.policies if p.quality is not None]
        self._timed: TimedRules | None = None
        if limits:  # the strictest of each limit across the policies that apply (an alert names its policy)
            strictest = {rule: min(limits, key=lambda named: float(getattr(named[1], rule)))
                         for rule in ("max_silence_s", "max_hold_s", "talk_over_ms")}
            self._timed = TimedRules(TimedLimits(
                **{rule: float(getattr(quality, rule)) for rule, (_, quality) in strictest.items()}),
                policy_of={rule: name for rule, (name, _) in strictest.items()})

    # ------------------------------------------------------------------ inputs
    def heard(self, said: Said) -> list[QualityAlert]:
        """An utterance finished: the phrase and disclaimer rules, silence and waits, talking over the caller."""
        raised = self._timed.spoke(Span(said.speaker, said.start, said.end)) if self._timed is not None else []
        if said.speaker == "caller":
            self._alerts += raised
            return raised
        text = normalise(said.text)
        for item in self._forbidden:
            if item.pattern.search(text):
                reason = f" ({item.reason})" if item.reason else ""
                raised.append(QualityAlert("forbidden_phrase", said.end, item.policy, item.phrase,
                                           f"{said.speaker} said {item.phrase!r}{reason}", said.speaker))
        for rule in self._disclaimers:
            says_it = any(p.search(text) for p in rule.phrases)
            if not rule.said and not says_it and not rule.flagged and any(k.search(text) for k in rule.topic):
                rule.flagged = True
                raised.append(QualityAlert("missing_disclaimer", said.end, rule.policy, rule.name,
                                           f"{said.speaker} spoke of the topic before the '{rule.name}' disclaimer",
                                           said.speaker))
            rule.said = rule.said or says_it
        self._alerts += raised
        return raised

    def sounded(self, speaker: str, start: float, end: float) -> list[QualityAlert]:
        """Voice activity without words yet (a bridged leg's utterance): the timed rules only."""
        if self._timed is None:
            return []
        raised = self._timed.spoke(Span(speaker, start, end))
        self._alerts += raised
        return raised

    def answered(self, at: float) -> None:
        if self._timed is not None:
            self._timed.answered(at)

    def queued(self, at: float) -> None:
        if self._timed is not None:
            self._timed.queued(at)

    def left_queue(self, at: float) -> None:
        if self._timed is not None:
            self._timed.left_queue(at)

    def agent_answered(self, at: float) -> None:
        if self._timed is not None:
            self._timed.agent_answered(at)

    def transcribing(self) -> None:
        if self._timed is not None:
            self._timed.transcribing()

    def ended(self) -> None:
        if self._timed is not None:
            self._timed.ended()

    def tick(self, now: float) -> list[QualityAlert]:
        """Time passed: a wait or a silence that has now lasted too long (each alerted once per episode)."""
        if self._timed is None:
            return []
        raised = self._timed.tick(now)
        self._alerts += raised
        return raised

    # ------------------------------------------------------------------ output
    def report(self) -> QualityReport:
        score = max(0, 100 - sum(PENALTY[alert.kind] for alert in self._alerts))
        said = tuple(f"{rule.policy}:{rule.name}" for rule in self._disclaimers if rule.said)
        return QualityReport(score, tuple(self._alerts), said)
