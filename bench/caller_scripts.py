"""What the turn-latency callers say: human voices and Piper on a bed of line noise, as 8 kHz int16 audio.

Human voices come from ../shared/datasets/human-speech (see its README): FSDD digits (george, jackson, lucas)
joined with 150-450 ms pauses into account numbers, and AISHELL-1 speaker S0252's Mandarin sentences. English
phrases (requests, yes/no, a free-form question, hesitations) are spoken by the bundled Piper voice. Every pause,
inside an utterance or between turns, carries line noise, never digital zeros. A `Script` knows where each turn's
speech ends (its last voiced sample), so latency can be taken from the caller's last voiced frame.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from bench.rtp_callers import RATE, line_noise
from voicebot.speech.resample import resample

# ../shared beside the repository; HUMAN_SPEECH_DIR points elsewhere (a git worktree has no ../shared beside it)
HUMAN_SPEECH = Path(os.environ.get("HUMAN_SPEECH_DIR")
                    or Path(__file__).resolve().parents[2] / "shared" / "datasets" / "human-speech")
FSDD = HUMAN_SPEECH / "fsdd-dev"
AISHELL = HUMAN_SPEECH / "aishell-S0252"
FSDD_SPEAKERS = ("george", "jackson", "lucas")
SPEECH_RMS = 2500.0  # active speech level on the line (about -22 dBFS)
NOISE_RMS = 40.0  # line noise under and between the words


@dataclass(frozen=True)
class Piece:
    """One stretch of a turn: speech (`audio`) or a pause of `pause_s` seconds of line noise."""

    audio: np.ndarray | None = None
    pause_s: float = 0.0


@dataclass(frozen=True)
class TurnSpec:
    """A caller turn: its pieces, what it is (for the report), and whether it needs the full endpoint."""

    label: str
    pieces: tuple[Piece, ...]
    full_endpoint: bool  # free-form or hesitant: the bot cannot tell early that the caller is done


@dataclass
class Script:
    """The caller's whole audio and, per turn, the sample index just past its last voiced sample."""

    audio: np.ndarray
    turn_ends: list[int] = field(default_factory=list)
    turn_starts: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    full_endpoint: list[bool] = field(default_factory=list)


def trimmed(audio: np.ndarray) -> np.ndarray:
    """`audio` without its leading and trailing quiet (below 5 % of its peak), levelled to SPEECH_RMS."""
    pcm = audio.astype(np.float64)
    threshold = max(200.0, 0.05 * float(np.max(np.abs(pcm)))) if len(pcm) else 0.0
    loud = np.flatnonzero(np.abs(pcm) > threshold)
    if len(loud) == 0:
        raise ValueError("utterance has no speech above the noise")
    pcm = pcm[max(0, loud[0] - 40):loud[-1] + 40]
    pcm *= SPEECH_RMS / max(1.0, float(np.sqrt(np.mean(pcm ** 2))))
    return np.clip(pcm, -32768, 32767).astype(np.int16)


def read_8k(path: Path) -> np.ndarray:
    audio, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
    mono = audio[:, 0]
    return resample(mono, rate, RATE) if rate != RATE else mono


def fsdd_digits(digits: str, speaker: str, rng: np.random.Generator) -> tuple[Piece, ...]:
    """`digits` in one FSDD speaker's voice, 150-450 ms of line noise between them."""
    if speaker not in FSDD_SPEAKERS:
        raise ValueError(f"FSDD speaker must be one of {FSDD_SPEAKERS}, got {speaker!r}")
    pieces: list[Piece] = []
    for position, digit in enumerate(digits):
        if not digit.isdigit():
            raise ValueError(f"digits only, got {digits!r}")
        take = int(rng.integers(0, 50))
        path = FSDD / f"{digit}_{speaker}_{take}.flac"
        if not path.exists():
            raise FileNotFoundError(f"{path} (FSDD set missing: see {HUMAN_SPEECH}/README.md)")
        if position:
            pieces.append(Piece(pause_s=float(rng.uniform(0.15, 0.45))))
        pieces.append(Piece(audio=trimmed(read_8k(path))))
    return tuple(pieces)


def aishell_sentences() -> list[tuple[str, str]]:
    """(utterance id, reference text) of the AISHELL-1 S0252 set."""
    with (AISHELL / "transcripts.tsv").open(encoding="utf-8", newline="") as handle:
        return [(row[0], row[1]) for row in csv.reader(handle, delimiter="\t") if row and not row[0].startswith("#")]


def aishell_audio(utterance_id: str) -> np.ndarray:
    matches = sorted(AISHELL.rglob(f"{utterance_id}.flac"))
    if not matches:
        raise FileNotFoundError(f"{utterance_id}.flac not under {AISHELL}")
    return trimmed(read_8k(matches[0]))


def build(turns: list[TurnSpec], *, lead_s: float, gap_s: float, seed: int, tail_s: float = 4.0) -> Script:
    """Lay the turns out: `lead_s` of line noise, each turn, `gap_s` of line noise after each; noise everywhere."""
    chunks: list[np.ndarray] = []
    script = Script(audio=np.zeros(0, np.int16))
    position = 0

    def add(audio: np.ndarray) -> None:
        nonlocal position
        chunks.append(audio)
        position += len(audio)

    noise_seed = seed * 1000
    add(np.zeros(int(lead_s * RATE), np.int16))
    for turn in turns:
        script.turn_starts.append(position)
        for piece in turn.pieces:
            add(piece.audio if piece.audio is not None else np.zeros(int(piece.pause_s * RATE), np.int16))
        script.turn_ends.append(position)
        script.labels.append(turn.label)
        script.full_endpoint.append(turn.full_endpoint)
        add(np.zeros(int(gap_s * RATE), np.int16))
    add(np.zeros(int(tail_s * RATE), np.int16))
    speech = np.concatenate(chunks).astype(np.int32)
    noisy = speech + line_noise(len(speech), NOISE_RMS, noise_seed)
    script.audio = np.clip(noisy, -32768, 32767).astype(np.int16)
    return script


def piper_voice() -> Callable[[str], np.ndarray]:
    """text -> 8 kHz int16 speech in the bundled Piper voice, trimmed and levelled (renderings are cached)."""
    from voicebot.speech.tts import PiperTts

    tts = PiperTts(threads=1)
    cache: dict[str, np.ndarray] = {}

    def say(text: str) -> np.ndarray:
        if text not in cache:
            pcm, rate = tts.synthesize(text)
            cache[text] = trimmed(resample(pcm, rate, RATE))
        return cache[text]

    return say


def english_caller(say: Callable[[str], np.ndarray], seed: int) -> list[TurnSpec]:
    """A balance call mixing complete answers with turns that need the full endpoint: a free-form question
    (the bot cannot match it: it reprompts), a request, an account number in a human voice (FSDD), a "no", a
    hesitant second try ("um" and a pause before the digits), a "yes"."""
    rng = np.random.default_rng(seed)
    speaker = FSDD_SPEAKERS[seed % len(FSDD_SPEAKERS)]
    first, second = ("".join(str(d) for d in rng.integers(0, 10, 6)) for _ in range(2))
    return [
        TurnSpec("free-form question", (Piece(say("Hi, I was wondering what your opening hours are on weekends?")),),
                 True),
        TurnSpec("request", (Piece(say("I'd like to check my balance please.")),), False),
        TurnSpec(f"FSDD digits ({speaker})", fsdd_digits(first, speaker, rng), False),
        TurnSpec("no", (Piece(say("No.")),), False),
        TurnSpec(f"hesitation + FSDD digits ({speaker})",
                 (Piece(say("Um, it's")), Piece(pause_s=0.7)) + fsdd_digits(second, speaker, rng), True),
        TurnSpec("yes", (Piece(say("Yes, that's right.")),), False),
    ]


def mandarin_caller(seed: int, turns: int = 3) -> list[TurnSpec]:
    """A Mandarin caller reading AISHELL sentences: free-form speech the bot has to hear out (full endpoint)."""
    sentences = aishell_sentences()
    rng = np.random.default_rng(seed)
    picked = [sentences[int(i)] for i in rng.choice(len(sentences), size=turns, replace=False)]
    return [TurnSpec(f"AISHELL {utterance_id}", (Piece(aishell_audio(utterance_id)),), True)
            for utterance_id, _ in picked]
