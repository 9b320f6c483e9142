"""G.711 mu-law and A-law codecs (ITU-T G.711) with numpy lookup tables.

Encoding indexes a 65536-entry table by the int16 sample's bit pattern; decoding indexes a
256-entry table by the code byte. Tables are computed once, at import, with the reference
algorithm of the Sun/ITU sample code, vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159  # 14-bit magnitude clip of the reference coder
_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def _all_int16() -> npt.NDArray[np.int32]:
    """Every int16 value, ordered by its uint16 bit pattern (table index order)."""
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode_table() -> npt.NDArray[np.uint8]:
    pcm = _all_int16() >> 2
    negative = pcm < 0
    mask = np.where(negative, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude, side="left")
    code = np.where(
        segment >= 8,
        0x7F,
        (np.minimum(segment, 7) << 4) | ((magnitude >> (np.minimum(segment, 7) + 1)) & 0xF),
    )
    return (code ^ mask).astype(np.uint8)


def _build_ulaw_decode_table() -> Pcm:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = (((code & 0x0F) << 3) + _ULAW_BIAS) << ((code & 0x70) >> 4)
    return np.where(code & 0x80, _ULAW_BIAS - magnitude, magnitude - _ULAW_BIAS).astype(np.int16)


def _build_alaw_encode_table() -> npt.NDArray[np.uint8]:
    pcm = _all_int16() >> 3
    negative = pcm < 0
    mask = np.where(negative, 0x55, 0xD5)
    magnitude = np.where(negative, -pcm - 1, pcm)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude, side="left")
    shift = np.where(segment < 2, 1, np.minimum(segment, 7))
    code = np.where(segment >= 8, 0x7F, (np.minimum(segment, 7) << 4) | ((magnitude >> shift) & 0xF))
    return (code ^ mask).astype(np.uint8)


def _build_alaw_decode_table() -> Pcm:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code & 0x70) >> 4
    base = (code & 0x0F) << 4
    magnitude = np.where(segment == 0, base + 8, (base + 0x108) << np.maximum(segment - 1, 0))
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


ULAW_ENCODE_TABLE = _build_ulaw_encode_table()
ULAW_DECODE_TABLE = _build_ulaw_decode_table()
ALAW_ENCODE_TABLE = _build_alaw_encode_table()
ALAW_DECODE_TABLE = _build_alaw_decode_table()
for _table in (ULAW_ENCODE_TABLE, ULAW_DECODE_TABLE, ALAW_ENCODE_TABLE, ALAW_DECODE_TABLE):
    _table.setflags(write=False)


def _as_index(pcm: Pcm) -> npt.NDArray[np.uint16]:
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16:
        raise TypeError(f"G.711 encoding needs a numpy int16 array, got {type(pcm).__name__} "
                        f"{getattr(pcm, 'dtype', '')}".rstrip())
    return np.ascontiguousarray(pcm).view(np.uint16)


def ulaw_encode(pcm: Pcm) -> bytes:
    """Encode int16 PCM samples to mu-law bytes (one byte per sample)."""
    return ULAW_ENCODE_TABLE[_as_index(pcm)].tobytes()


def ulaw_decode(data: bytes | bytearray | memoryview) -> Pcm:
    """Decode mu-law bytes to int16 PCM samples."""
    return ULAW_DECODE_TABLE[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(pcm: Pcm) -> bytes:
    """Encode int16 PCM samples to A-law bytes (one byte per sample)."""
    return ALAW_ENCODE_TABLE[_as_index(pcm)].tobytes()


def alaw_decode(data: bytes | bytearray | memoryview) -> Pcm:
    """Decode A-law bytes to int16 PCM samples."""
    return ALAW_DECODE_TABLE[np.frombuffer(data, dtype=np.uint8)]


@dataclass(frozen=True, slots=True)
class Codec:
    """An 8 kHz narrowband codec as named in SDP (rtpmap encoding name)."""

    name: str
    static_payload_type: int
    encode: Callable[[Pcm], bytes]
    decode: Callable[[bytes | bytearray | memoryview], Pcm]
    silence_byte: int
    sample_rate: int = 8000


CODECS: dict[str, Codec] = {
    "PCMU": Codec("PCMU", 0, ulaw_encode, ulaw_decode, silence_byte=int(ULAW_ENCODE_TABLE[0])),
    "PCMA": Codec("PCMA", 8, alaw_encode, alaw_decode, silence_byte=int(ALAW_ENCODE_TABLE[0])),
}


def get_codec(name: str) -> Codec:
    """Look a codec up by its SDP encoding name (case-insensitive)."""
    codec = CODECS.get(name.upper())
    if codec is None:
        raise ValueError(f"unsupported codec {name!r}; supported: {', '.join(sorted(CODECS))}")
    return codec
