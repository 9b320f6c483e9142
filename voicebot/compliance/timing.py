"""The timed quality rules of a live call (质检): dead air, a wait without news, the agent talking over the caller.

Pure logic on timestamps (seconds on one clock, e.g. time.time()): the caller says what happened and when
(`answered`, `queued`, `agent_answered`, `transcribing`, `spoke`, `ended`) and calls `tick(now)` about once a
second for the rules that fire on time passing. Each rule alerts at most once per episode:

- ``max_silence_s``, one episode per quiet stretch (a line heard starts a new one). While the bot has the call, the
  bot owes the caller a reply from the answer and from each caller line until it says something: longer than the
  limit is dead air left by the bot (the caller's own silence after a prompt is the dialplan's no-input business).
  While bridged, nobody (caller, agent or bot) said anything for longer than the limit; judged only when the bridged
  legs are transcribed live (without a transcript there is nothing to judge silence by).
- ``max_hold_s``, one episode per stretch of waiting without news: from joining a queue, or from the last
  announcement the bot made to the waiting caller, until the agent answers; longer than the limit is an alert.
- ``talk_over_ms``, one episode per pair of turns: an agent line that starts while a caller line is going on (at or
  after its start, before its end) and overlaps it for at least the limit. Lines may arrive in any order (each leg is
  recognised on its own); an agent line or a caller line is flagged at most once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from voicebot.compliance.alerts import QualityAlert

__all__ = ["Span", "TimedLimits", "TimedRules"]

_KEEP_S = 120.0  # how far back spoken lines are kept for talk-over (a leg's recognition lags by seconds, not minutes)
_EPSILON_MS = 1e-6  # float noise in "exactly at the limit"


@dataclass(frozen=True)
class TimedLimits:
    max_silence_s: float
    max_hold_s: float
    talk_over_ms: float


@dataclass(frozen=True)
class Span:
    """One spoken line's time: who, start, end (seconds)."""

    speaker: str
    start: float
    end: float


@dataclass
class TimedRules:
    """The timed rules of one call under ``limits``; nothing is judged before `answered` or after `ended`. An alert
    names the policy ``policy_of`` gives for its rule (the policy whose limit applies), else none."""

    limits: TimedLimits
    policy_of: Mapping[str, str] = field(default_factory=dict)
    phase: str = "idle"  # idle -> bot -> queued -> bridged -> ended (queued -> bot when the caller leaves the queue)
    transcribed: bool = False  # the bridged legs are transcribed live
    _quiet_since: float | None = None  # the silence episode's start (None: nobody owes a word now)
    _silence_flagged: bool = False
    _waiting_since: float | None = None  # the hold episode's start
    _hold_flagged: bool = False
    _spans: dict[str, list[Span]] = field(default_factory=lambda: {"caller": [], "agent": []})
    _flagged: set[Span] = field(default_factory=set)

    # ------------------------------------------------------------------ what happened
    def answered(self, at: float) -> None:
        """The bot took the call: it owes the caller a greeting."""
        self.phase = "bot"
        self._silence_from(at)

    def queued(self, at: float) -> None:
        """The caller joined a queue (hold audio): a wait episode starts; silence is not judged while waiting."""
        self.phase, self._quiet_since = "queued", None
        self._wait_from(at)

    def left_queue(self, at: float) -> None:
        """The caller left the queue for the bot again (e.g. chose a callback)."""
        self.phase, self._waiting_since = "bot", None
        self._silence_from(at)

    def agent_answered(self, at: float) -> None:
        self.phase, self._waiting_since = "bridged", None
        self._silence_from(at)

    def transcribing(self) -> None:
        """The bridged legs are transcribed live: silence on the bridge can be judged."""
        self.transcribed = True

    def ended(self) -> None:
        self.phase, self._quiet_since, self._waiting_since = "ended", None, None

    def spoke(self, span: Span) -> list[QualityAlert]:
        """A spoken line finished: it ends a silence (or, from the caller, makes the bot owe a reply), an
        announcement by the bot to a waiting caller starts a new wait episode, and agent lines are judged for
        talking over the caller."""
        if self.phase == "bot":
            if span.speaker == "caller":
                self._silence_from(max(span.end, self._quiet_since or span.end))
            else:
                self._quiet_since = None  # the bot replied: the caller's turn
        elif self.phase == "bridged":
            self._silence_from(max(span.end, self._quiet_since or span.end))
        elif self.phase == "queued" and span.speaker == "bot":
            self._wait_from(span.end)
        if span.speaker not in self._spans:
            return []
        spans = self._spans[span.speaker]
        if span in spans:  # the same utterance again (its voice activity first, then its words)
            return []
        spans.append(span)
        newest = max(s.end for s in spans)
        self._spans[span.speaker] = [s for s in spans if s.end >= newest - _KEEP_S][-32:]
        return self._talk_over()

    # ------------------------------------------------------------------ time passing
    def tick(self, now: float) -> list[QualityAlert]:
        """The waits and silences that have now lasted longer than allowed (each once per episode)."""
        raised: list[QualityAlert] = []
        limits = self.limits
        if (self.phase == "queued" and self._waiting_since is not None and not self._hold_flagged
                and now - self._waiting_since > limits.max_hold_s):
            self._hold_flagged = True
            raised.append(self._alert("long_hold", "max_hold_s", now,
                                     f"caller waiting for more than {limits.max_hold_s:g} s without an "
                                     "announcement or an agent"))
        judged = self.phase == "bot" or (self.phase == "bridged" and self.transcribed)
        if (judged and self._quiet_since is not None and not self._silence_flagged
                and now - self._quiet_since > limits.max_silence_s):
            self._silence_flagged = True
            if self.phase == "bot":
                raised.append(self._alert("long_silence", "max_silence_s", now,
                                         f"the bot left the caller in dead air for more than "
                                         f"{limits.max_silence_s:g} s", "bot"))
            else:
                raised.append(self._alert("long_silence", "max_silence_s", now,
                                         f"nobody spoke on the bridged call for more than "
                                         f"{limits.max_silence_s:g} s"))
        return raised

    # ------------------------------------------------------------------ internals
    def _alert(self, kind: str, rule: str, at: float, detail: str, speaker: str | None = None) -> QualityAlert:
        return QualityAlert(kind, at, self.policy_of.get(rule, ""), rule, detail, speaker)

    def _silence_from(self, at: float) -> None:
        self._quiet_since, self._silence_flagged = at, False

    def _wait_from(self, at: float) -> None:
        self._waiting_since, self._hold_flagged = at, False

    def _talk_over(self) -> list[QualityAlert]:
        raised: list[QualityAlert] = []
        limit_ms = self.limits.talk_over_ms
        for agent in self._spans["agent"]:
            if agent in self._flagged:
                continue
            for caller in self._spans["caller"]:
                if caller in self._flagged or not caller.start <= agent.start < caller.end:
                    continue
                overlap_ms = (min(caller.end, agent.end) - agent.start) * 1000.0
                if overlap_ms + _EPSILON_MS >= limit_ms:
                    self._flagged |= {agent, caller}
                    raised.append(self._alert("talk_over", "talk_over_ms", agent.start,
                                             f"agent talked over the caller for {overlap_ms:.0f} ms "
                                             f"(limit {limit_ms:g} ms)", "agent"))
                    break
        kept = set(self._spans["agent"]) | set(self._spans["caller"])
        self._flagged &= kept
        return raised
