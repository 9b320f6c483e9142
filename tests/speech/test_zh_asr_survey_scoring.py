"""The Mandarin survey's scoring (bench/zh_asr_survey.py): simplified, punctuation-free, numerals read as the
reference reads them, and the phone line it simulates."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from voicebot.speech.resample import resample

_PATH = Path(__file__).resolve().parents[2] / "bench" / "zh_asr_survey.py"
_SPEC = importlib.util.spec_from_file_location("zh_asr_survey", _PATH)
assert _SPEC and _SPEC.loader
survey = importlib.util.module_from_spec(_SPEC)
sys.modules["zh_asr_survey"] = survey
_SPEC.loader.exec_module(survey)


def test_traditional_output_and_punctuation_cost_nothing() -> None:
    assert survey.score_hypothesis("時代奧特萊斯，1號門。", "时代奥特莱斯1号门") == (0, "时代奥特莱斯1号门")


@pytest.mark.parametrize(("hypothesis", "reference"), [
    ("有20个人", "有二十个人"),          # a quantity
    ("来了2个", "来了两个"),             # 两 for two of something
    ("尾号1234", "尾号一二三四"),        # a digit string
    ("拨打110", "拨打幺幺零"),           # digits read with 幺
    ("打8.5折", "打8.5折"),              # kept as written when the reference writes digits
])
def test_a_numeral_is_read_the_way_closest_to_the_reference(hypothesis: str, reference: str) -> None:
    edits, _ = survey.score_hypothesis(hypothesis, reference)
    assert edits == 0


def test_real_mistakes_are_counted_per_character() -> None:
    edits, scored = survey.score_hypothesis("喊您提歌成", "海宁皮革城")
    assert (edits, scored) == (5, "喊您提歌成")
    assert survey.score_hypothesis("打开let it go", "打开Let It Go")[0] == 0
    assert survey.score_hypothesis("变温温度设为", "变温温度设为两度")[0] == 2


def test_the_phone_line_keeps_speech_and_doubles_the_rate() -> None:
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.int16)
    heard = survey.through_phone_line(tone)
    assert heard.dtype == np.int16 and heard.size == 16000
    reference = (8000 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000))
    middle = slice(2000, 14000)  # away from the filter's edges
    error = np.sqrt(np.mean((heard[middle] - reference[middle]) ** 2)) / np.sqrt(np.mean(reference[middle] ** 2))
    assert error < 0.05  # mu-law + resampling: a few percent, not a different signal
    assert not np.array_equal(heard, resample(tone, 8000, 16000))  # the G.711 quantisation is really applied


def test_subset_takes_every_nth_utterance_sorted_by_id(tmp_path: Path) -> None:
    """The survey's subset rule on a transcripts.tsv laid out like the shared set's (which benchmarks read by path;
    the suite must pass without it)."""
    ids = [f"BAC009S0252W{n:04d}" for n in range(1, 13)]
    lines = [f"{utt_id}\t参考文本{index}" for index, utt_id in enumerate(ids)]
    (tmp_path / "transcripts.tsv").write_text("\n".join(reversed(lines)) + "\n", encoding="utf-8")
    subset = survey.load_subset(tmp_path, every=4, limit=None)
    assert [u.utt_id for u in subset] == [ids[0], ids[4], ids[8]]
    assert subset[1].reference == "参考文本4" and subset[1].path == tmp_path / f"{ids[4]}.flac"
    assert [u.utt_id for u in survey.load_subset(tmp_path, every=4, limit=2)] == [ids[0], ids[4]]
