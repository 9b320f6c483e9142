"""Scoring shared by the recognition benchmarks: Levenshtein distance over characters or words.

The one edit distance is voicebot.speech.grammar's (the recogniser uses it to find known values near a decode)."""

from __future__ import annotations

from voicebot.speech.grammar import edit_distance

__all__ = ["edit_distance"]
