"""Pure end-of-utterance state machine: frames + voiced flags in, listen events out.

No clocks, no I/O: time is the sum of the frame durations fed so far, so the same frames always give
the same events. One `Endpointer` serves one Listen (create a new one per prompt/turn).

Timeline of one listen::

    WAITING --(>= min_speech_ms voiced)--> SPEECH --(hangover_start_ms silent)--> HANGOVER
       |                                     ^  |                                   |   |
    NoInput after no_input_timeout_ms        |  +--(max_utterance_ms)--> MaxUtterance  |
                                             +--------(voice again: HangoverCancelled)-+
                                                          (end_silence_ms silent) --> SpeechEnded
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

import numpy as np


@dataclass(frozen=True)
class ListenSettings:
    """Per-listen endpointing parameters (milliseconds)."""

    no_input_timeout_ms: int = 5000
    end_silence_ms: int = 700
    max_utterance_ms: int = 15000
    min_speech_ms: int = 120
    hangover_start_ms: int = 200  # silence after which speculative ASR may start
    pre_roll_ms: int = 300  # audio kept from before speech onset (word onsets are quiet)
    onset_gap_ms: int = 100  # silence that discards a not-yet-confirmed onset (clicks, coughs)

    def __post_init__(self) -> None:
        for name in ("no_input_timeout_ms", "end_silence_ms", "max_utterance_ms", "min_speech_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 ms, got {getattr(self, name)}")
        for name in ("hangover_start_ms", "pre_roll_ms", "onset_gap_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 ms, got {getattr(self, name)}")
        if self.hangover_start_ms > self.end_silence_ms:
            raise ValueError(
                f"hangover_start_ms ({self.hangover_start_ms}) must not exceed end_silence_ms ({self.end_silence_ms})"
            )
        if self.min_speech_ms >= self.max_utterance_ms:
            raise ValueError("min_speech_ms must be smaller than max_utterance_ms")


@dataclass(frozen=True, eq=False)
class SpeechStarted:
    at_ms: float  # listen time of the first voiced frame of the confirmed onset


@dataclass(frozen=True, eq=False)
class HangoverStarted:
    """Speech has paused for `hangover_start_ms`: ASR may start on `audio` speculatively."""

    audio: np.ndarray
    revision: int


@dataclass(frozen=True, eq=False)
class HangoverCancelled:
    """The caller spoke again: discard the speculative result of `revision`."""

    revision: int


@dataclass(frozen=True, eq=False)
class SpeechEnded:
    """Utterance complete. `audio` is identical to HangoverStarted.audio of the same `revision`."""

    audio: np.ndarray
    revision: int
    speech_ms: float


@dataclass(frozen=True, eq=False)
class NoInput:
    waited_ms: float


@dataclass(frozen=True, eq=False)
class MaxUtterance:
    audio: np.ndarray
    speech_ms: float


EndpointEvent = SpeechStarted | HangoverStarted | HangoverCancelled | SpeechEnded | NoInput | MaxUtterance


class Phase(Enum):
    WAITING = "waiting"
    SPEECH = "speech"
    HANGOVER = "hangover"
    DONE = "done"


@dataclass
class Endpointer:
    """Feed consecutive frames with `feed(frame, voiced)`; collect the returned events."""

    settings: ListenSettings = field(default_factory=ListenSettings)
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, got {self.sample_rate}")
        self.phase = Phase.WAITING
        self.elapsed_ms = 0.0
        self._pre_roll: deque[np.ndarray] = deque()
        self._pre_roll_ms = 0.0
        self._onset: list[np.ndarray] = []  # unconfirmed onset frames (voiced and short gaps)
        self._onset_start_ms = 0.0
        self._onset_voiced_ms = 0.0
        self._onset_gap_ms = 0.0
        self._utterance: list[np.ndarray] = []
        self._speech_start_ms = 0.0
        self._silence_ms = 0.0
        self._hangover_audio: np.ndarray | None = None
        self._revision = 0

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    @property
    def revision(self) -> int:
        """The revision of the latest HangoverStarted (0 before the first pause)."""
        return self._revision

    @property
    def silence_ms(self) -> float:
        """Trailing silence of the utterance so far (0 while voiced or before speech started)."""
        return self._silence_ms if self.phase in (Phase.SPEECH, Phase.HANGOVER) else 0.0

    def feed(self, frame: np.ndarray, voiced: bool) -> list[EndpointEvent]:
        """Advance by one frame. Returns the events it caused (usually none). Ignores frames once done."""
        if frame.ndim != 1 or frame.size == 0:
            raise ValueError(f"frame must be a non-empty 1-D PCM array, got shape {frame.shape}")
        if self.phase is Phase.DONE:
            return []
        frame_ms = self._ms(frame)
        start_ms = self.elapsed_ms
        self.elapsed_ms += frame_ms
        if self.phase is Phase.WAITING:
            return self._waiting(frame, bool(voiced), frame_ms, start_ms)
        return self._speaking(frame, bool(voiced), frame_ms)

    def _waiting(self, frame: np.ndarray, voiced: bool, frame_ms: float, start_ms: float) -> list[EndpointEvent]:
        settings = self.settings
        if voiced or self._onset:
            if not self._onset:
                self._onset_start_ms, self._onset_voiced_ms, self._onset_gap_ms = start_ms, 0.0, 0.0
            self._onset.append(frame)
            if voiced:
                self._onset_voiced_ms += frame_ms
                self._onset_gap_ms = 0.0
            else:
                self._onset_gap_ms += frame_ms
                if self._onset_gap_ms > settings.onset_gap_ms:
                    for dropped in self._onset:
                        self._remember_pre_roll(dropped)
                    self._onset = []
            if self._onset and self._onset_voiced_ms >= settings.min_speech_ms:
                self.phase = Phase.SPEECH
                self._utterance = [*self._pre_roll, *self._onset]
                self._speech_start_ms = self._onset_start_ms
                self._onset, self._pre_roll = [], deque()
                return [SpeechStarted(at_ms=self._speech_start_ms)]
        else:
            self._remember_pre_roll(frame)
        if not self._onset and self.elapsed_ms >= settings.no_input_timeout_ms:
            self.phase = Phase.DONE
            return [NoInput(waited_ms=self.elapsed_ms)]
        return []

    def _speaking(self, frame: np.ndarray, voiced: bool, frame_ms: float) -> list[EndpointEvent]:
        settings = self.settings
        events: list[EndpointEvent] = []
        self._utterance.append(frame)
        if voiced:
            self._silence_ms = 0.0
            if self.phase is Phase.HANGOVER:
                self.phase = Phase.SPEECH
                self._hangover_audio = None
                events.append(HangoverCancelled(revision=self._revision))
        else:
            self._silence_ms += frame_ms
            if self.phase is Phase.SPEECH and self._silence_ms >= settings.hangover_start_ms:
                self.phase = Phase.HANGOVER
                self._revision += 1
                self._hangover_audio = np.concatenate(self._utterance)
                events.append(HangoverStarted(audio=self._hangover_audio, revision=self._revision))
            if self.phase is Phase.HANGOVER and self._silence_ms >= settings.end_silence_ms:
                self.phase = Phase.DONE
                assert self._hangover_audio is not None
                speech_ms = self.elapsed_ms - self._silence_ms - self._speech_start_ms
                events.append(SpeechEnded(audio=self._hangover_audio, revision=self._revision, speech_ms=speech_ms))
                return events
        speech_ms = self.elapsed_ms - self._speech_start_ms
        if speech_ms >= settings.max_utterance_ms:
            self.phase = Phase.DONE
            events.append(MaxUtterance(audio=np.concatenate(self._utterance), speech_ms=speech_ms))
        return events

    def _remember_pre_roll(self, frame: np.ndarray) -> None:
        """Keep the most recent frames covering at least pre_roll_ms (none if pre_roll_ms is 0)."""
        self._pre_roll.append(frame)
        self._pre_roll_ms += self._ms(frame)
        while self._pre_roll and self._pre_roll_ms - self._ms(self._pre_roll[0]) >= self.settings.pre_roll_ms:
            self._pre_roll_ms -= self._ms(self._pre_roll.popleft())
        if self.settings.pre_roll_ms == 0:
            self._pre_roll.clear()
            self._pre_roll_ms = 0.0

    def _ms(self, frame: np.ndarray) -> float:
        return frame.size * 1000.0 / self.sample_rate
