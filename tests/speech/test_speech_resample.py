"""Resampler: frequency response, aliasing, length, streaming equivalence, bad input."""

import numpy as np
import pytest

from voicebot.speech.resample import StreamResampler, resample, resample_float


def tone(frequency: float, rate: int, seconds: float = 1.0, amplitude: float = 10000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def amplitude_at(signal: np.ndarray, rate: int, frequency: float) -> float:
    """Peak amplitude near `frequency`, measured on the middle half (edges excluded)."""
    x = signal.astype(np.float64)[len(signal) // 4 : 3 * len(signal) // 4]
    window = np.hanning(x.size)
    spectrum = np.abs(np.fft.rfft(x * window)) * 2 / window.sum()
    freqs = np.fft.rfftfreq(x.size, 1 / rate)
    band = np.abs(freqs - frequency) < 20
    return float(spectrum[band].max())


@pytest.mark.parametrize(
    "from_rate,to_rate,frequency",
    [(22050, 8000, 1000), (22050, 8000, 3000), (8000, 16000, 1000),
     (16000, 8000, 2500), (8000, 16000, 3300)],
)
def test_passband_tone_keeps_its_amplitude(from_rate, to_rate, frequency):
    out = resample(tone(frequency, from_rate), from_rate, to_rate)
    assert out.dtype == np.int16
    assert amplitude_at(out, to_rate, frequency) == pytest.approx(10000, rel=0.03)


@pytest.mark.parametrize("from_rate,to_rate,frequency", [(22050, 8000, 5000), (16000, 8000, 6000), (22050, 8000, 9000)])
def test_tones_above_the_new_nyquist_do_not_alias(from_rate, to_rate, frequency):
    out = resample(tone(frequency, from_rate), from_rate, to_rate)
    alias = abs(to_rate - frequency) if frequency < to_rate else frequency % to_rate
    assert amplitude_at(out, to_rate, alias) < 10  # > 60 dB below the 10000 input


@pytest.mark.parametrize(
    "from_rate,to_rate,n", [(22050, 8000, 22050), (8000, 16000, 160), (16000, 8000, 321), (44100, 22050, 1)]
)
def test_output_length_is_ceiling_of_ratio(from_rate, to_rate, n):
    out = resample(np.ones(n, np.int16), from_rate, to_rate)
    assert out.size == -(-n * to_rate // from_rate)


def test_impulse_stays_aligned_in_time():
    impulse = np.zeros(200, np.int16)
    impulse[80] = 30000
    assert int(np.argmax(resample(impulse, 8000, 16000))) == 160
    assert int(np.argmax(resample(impulse, 8000, 8000))) == 80


def test_same_rate_returns_a_copy_and_empty_stays_empty():
    x = tone(440, 8000, 0.1)
    out = resample(x, 8000, 8000)
    assert np.array_equal(out, x) and out is not x
    assert resample(np.zeros(0, np.int16), 8000, 16000).size == 0


def test_loud_input_is_clipped_not_wrapped():
    square = np.tile(np.r_[np.full(20, 32767), np.full(20, -32768)].astype(np.int16), 100)
    out = resample(square, 8000, 16000)  # Gibbs overshoot would exceed int16
    assert out.max() == 32767 and out.min() == -32768


@pytest.mark.parametrize("from_rate,to_rate", [(8000, 16000), (16000, 8000), (22050, 8000), (8000, 8000)])
def test_stream_resampler_matches_one_shot(from_rate, to_rate):
    rng = np.random.default_rng(7)
    x = rng.integers(-20000, 20000, from_rate // 2 + 13).astype(np.int16)
    stream = StreamResampler(from_rate, to_rate)
    pieces, i = [], 0
    while i < x.size:
        step = int(rng.integers(1, 400))
        pieces.append(stream.process(x[i : i + step]))
        i += step
    pieces.append(stream.flush())
    assert np.array_equal(np.concatenate(pieces), resample(x, from_rate, to_rate))


def test_stream_resampler_20ms_frames_have_small_constant_lag():
    stream = StreamResampler(8000, 16000)
    sizes = [stream.process(np.zeros(160, np.int16)).size for _ in range(10)]
    assert sum(sizes) >= 10 * 320 - 64  # at most a few ms held back
    assert all(size == 320 for size in sizes[1:])


def test_bad_input_is_rejected_clearly():
    with pytest.raises(TypeError, match="int16"):
        resample(np.zeros(10, np.float32), 8000, 16000)
    with pytest.raises(ValueError, match="from_rate"):
        resample(np.zeros(10, np.int16), 0, 16000)
    with pytest.raises(ValueError, match="to_rate"):
        resample_float(np.zeros(10), 8000, 16000.5)
    with pytest.raises(ValueError, match="mono"):
        resample_float(np.zeros((10, 2)), 8000, 16000)
