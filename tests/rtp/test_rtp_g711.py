"""G.711 tables against known code points, error bounds and CPython's audioop reference coder."""

import warnings

import numpy as np
import pytest

from voicebot.rtp.g711 import CODECS, alaw_decode, alaw_encode, get_codec, ulaw_decode, ulaw_encode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # independent reference implementation (CPython 3.11)

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
ALL_CODES = bytes(range(256))


def test_ulaw_known_values():
    assert ulaw_encode(np.array([0], dtype=np.int16)) == b"\xff"
    assert ulaw_decode(b"\xff\x7f").tolist() == [0, 0]
    assert ulaw_decode(b"\x00\x80").tolist() == [-32124, 32124]
    assert ulaw_encode(np.array([32767, -32768], dtype=np.int16)) == b"\x80\x00"


def test_alaw_known_values():
    assert alaw_encode(np.array([0], dtype=np.int16)) == b"\xd5"
    assert alaw_decode(b"\xd5\x55").tolist() == [8, -8]
    assert alaw_decode(b"\xaa\x2a").tolist() == [32256, -32256]


@pytest.mark.parametrize("encode,decode,reference_encode,reference_decode", [
    (ulaw_encode, ulaw_decode, audioop.lin2ulaw, audioop.ulaw2lin),
    (alaw_encode, alaw_decode, audioop.lin2alaw, audioop.alaw2lin),
])
def test_matches_reference_coder_for_every_value(encode, decode, reference_encode, reference_decode):
    assert encode(ALL_INT16) == reference_encode(ALL_INT16.tobytes(), 2)
    assert decode(ALL_CODES).tobytes() == reference_decode(ALL_CODES, 2)


@pytest.mark.parametrize("encode,decode,max_abs_error", [(ulaw_encode, ulaw_decode, 1024), (alaw_encode, alaw_decode, 1024)])
def test_round_trip_error_is_bounded_relative_to_level(encode, decode, max_abs_error):
    decoded = decode(encode(ALL_INT16)).astype(np.int32)
    error = np.abs(decoded - ALL_INT16.astype(np.int32))
    assert error.max() <= max_abs_error
    loud = np.abs(ALL_INT16.astype(np.int32)) >= 256
    assert (error[loud] / np.abs(ALL_INT16[loud].astype(np.int32))).max() < 0.07  # ~ 8-bit log companding
    quiet = np.abs(ALL_INT16.astype(np.int32)) < 32
    assert error[quiet].max() <= 8


@pytest.mark.parametrize("encode,decode", [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_decode_encode_is_identity_on_codes(encode, decode):
    decoded = decode(ALL_CODES)
    # 0x7F (mu-law negative zero) re-encodes as 0xFF; every other code is stable
    assert decode(encode(decoded)).tolist() == decoded.tolist()


def test_sine_round_trip_snr():
    t = np.arange(8000) / 8000
    pcm = (10000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    for name in CODECS:
        codec = get_codec(name)
        out = codec.decode(codec.encode(pcm)).astype(np.float64)
        noise = out - pcm
        snr = 10 * np.log10(np.sum(pcm.astype(np.float64) ** 2) / np.sum(noise ** 2))
        assert snr > 30, (name, snr)


def test_non_contiguous_input_is_encoded():
    pcm = np.arange(0, 2000, dtype=np.int16)[::2]
    assert ulaw_encode(pcm) == ulaw_encode(pcm.copy())


def test_registry_and_errors():
    assert get_codec("pcmu").static_payload_type == 0
    assert get_codec("PCMA").static_payload_type == 8
    assert get_codec("PCMU").silence_byte == 0xFF and get_codec("PCMA").silence_byte == 0xD5
    with pytest.raises(ValueError, match="unsupported codec 'G729'"):
        get_codec("G729")
    with pytest.raises(TypeError, match="int16"):
        ulaw_encode(np.zeros(4, dtype=np.float32))
