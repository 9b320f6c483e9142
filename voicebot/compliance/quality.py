"""Live quality checks of a call (质检): the industry policy applied to what is said while it is said.

Pure logic, fed as the call goes: `heard()` with each finished utterance of the caller, the bot or the agent
(text and times in seconds from any common clock), `hold_started()` / `hold_ended()`, and `tick(now)` about once
a second for the rules that fire on time passing. Each call returns the alerts raised by that input, so a
supervisor sees them within a tick; `report()` gives the per-call score and every alert.

Rules (from policies/<industry>.yaml, see compliance/lint.py):
- forbidden phrases, said by the bot or by the agent ("guaranteed returns", 保本保息, "your diagnosis is");
- required disclaimers: an utterance touching the topic (`before.say_contains`) before any disclaimer phrase was
  said in the call by the bot or the agent;
- `quality:` limits: silence on both sides while bridged, one hold longer than allowed, the agent talking over the
  caller (starting while the caller speaks and overlapping by more than allowed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from voicebot.compliance.lint import Policy, QualityLimits, normalise, phrase_pattern

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
class QualityAlert:
    """One breach: its kind (a PENALTY key), who caused it, when, the policy and rule, and a readable detail."""

    kind: str
    at: float
    policy: str
    rule: str
    detail: str
    speaker: str | None = None


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
    bridged: bool = False  # silence is only judged while a person (agent) is on the call
    _alerts: list[QualityAlert] = field(default_factory=list)
    _last_sound: float | None = None
    _hold_since: float | None = None
    _hold_flagged: bool = False
    _silence_flagged_at: float | None = None
    _recent: dict[str, list[Said]] = field(default_factory=lambda: {"caller": [], "agent": []})
    _talked_over: set[Said] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._forbidden = [_Forbidden(p.policy, item.phrase, item.reason, phrase_pattern(item.phrase))
                           for p in self.policies for item in p.forbidden_phrases]
        self._disclaimers = [_Disclaimer(p.policy, rule.name, [phrase_pattern(k) for k in rule.before.say_contains],
                                         [phrase_pattern(d) for d in rule.disclaimer])
                             for p in self.policies for rule in p.required_disclaimers]
        limits = [(p.policy, p.quality) for p in self.policies if p.quality is not None]
        self._limits: tuple[str, QualityLimits] | None = None
        if limits:  # the strictest of each limit across the policies that apply
            self._limits = (", ".join(name for name, _ in limits), QualityLimits(
                max_silence_s=min(q.max_silence_s for _, q in limits),
                max_hold_s=min(q.max_hold_s for _, q in limits),
                max_talk_over_s=min(q.max_talk_over_s for _, q in limits)))

    # ------------------------------------------------------------------ inputs
    def heard(self, said: Said) -> list[QualityAlert]:
        """An utterance finished: the phrase and disclaimer rules, and talking over the caller."""
        raised: list[QualityAlert] = []
        self._last_sound = max(self._last_sound or said.end, said.end)
        self._silence_flagged_at = None
        text = normalise(said.text)
        if said.speaker in self._recent:  # either may finish first: talking over is judged on both
            self._recent[said.speaker] = self._recent[said.speaker][-8:] + [said]
            raised += self._talk_over()
        if said.speaker == "caller":
            self._alerts += raised
            return raised
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

    def hold_started(self, at: float) -> None:
        self._hold_since, self._hold_flagged = at, False

    def hold_ended(self, at: float) -> None:
        self._hold_since = None
        self._last_sound = at

    def agent_joined(self, at: float) -> None:
        self.bridged, self._last_sound = True, at

    def agent_left(self) -> None:
        self.bridged = False

    def tick(self, now: float) -> list[QualityAlert]:
        """Time passed: a hold or a silence that has now lasted too long (each alerted once)."""
        if self._limits is None:
            return []
        names, limits = self._limits
        raised: list[QualityAlert] = []
        if self._hold_since is not None and not self._hold_flagged and now - self._hold_since > limits.max_hold_s:
            self._hold_flagged = True
            raised.append(QualityAlert("long_hold", now, names, "max_hold_s",
                                       f"caller on hold for more than {limits.max_hold_s:g} s", "agent"))
        quiet_since = self._last_sound
        if (self.bridged and self._hold_since is None and quiet_since is not None
                and self._silence_flagged_at is None and now - quiet_since > limits.max_silence_s):
            self._silence_flagged_at = now
            raised.append(QualityAlert("long_silence", now, names, "max_silence_s",
                                       f"nobody spoke for more than {limits.max_silence_s:g} s"))
        self._alerts += raised
        return raised

    # ------------------------------------------------------------------ output
    def report(self) -> QualityReport:
        score = max(0, 100 - sum(PENALTY[alert.kind] for alert in self._alerts))
        said = tuple(f"{rule.policy}:{rule.name}" for rule in self._disclaimers if rule.said)
        return QualityReport(score, tuple(self._alerts), said)

    def _talk_over(self) -> list[QualityAlert]:
        """The agent started while the caller was speaking and overlapped them for longer than allowed."""
        if self._limits is None:
            return []
        names, limits = self._limits
        raised: list[QualityAlert] = []
        for agent in self._recent["agent"]:
            if agent in self._talked_over:
                continue
            for caller in self._recent["caller"]:
                overlap = min(caller.end, agent.end) - agent.start
                if caller.start < agent.start < caller.end and overlap > limits.max_talk_over_s:
                    self._talked_over.add(agent)
                    raised.append(QualityAlert("talk_over", agent.start, names, "max_talk_over_s",
                                               f"agent talked over the caller for {overlap:.1f} s", "agent"))
                    break
        return raised
