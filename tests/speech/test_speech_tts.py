"""PiperTts with the bundled voice, and the voices.yaml catalogue."""

from pathlib import Path

import numpy as np
import pytest

from voicebot.speech.tts import PiperTts, bundled_piper_voice
from voicebot.speech.voices import DEFAULT_VOICES_FILE, VoiceSpec, load_voices


@pytest.fixture(scope="module")
def tts() -> PiperTts:
    return PiperTts()


def test_bundled_voice_files_come_from_the_installed_wheel():
    model, config = bundled_piper_voice()
    assert model.suffix == ".onnx" and "site-packages" in str(model)
    assert config.name == model.name + ".json"


def test_synthesize_returns_int16_speech_at_the_voice_rate(tts):
    pcm, rate = tts.synthesize("Thank you for calling. How can I help you today?")
    assert rate == 22050 == tts.sample_rate
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    seconds = pcm.size / rate
    assert 1.5 < seconds < 6.0
    assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 1000  # audible, not silence


def test_longer_text_gives_longer_audio(tts):
    short, _ = tts.synthesize("Yes.")
    long, _ = tts.synthesize("Please say or enter your eleven digit account number now.")
    assert long.size > 2 * short.size


def test_iter_sentences_streams_one_chunk_per_sentence(tts):
    chunks = list(tts.iter_sentences("Hello there. Your balance is twelve dollars! Is that right?"))
    assert len(chunks) == 3
    assert all(chunk.dtype == np.int16 and chunk.size > tts.sample_rate // 5 for chunk in chunks)


def test_synthesize_joins_sentences_with_the_configured_pause(tts):
    whole, rate = tts.synthesize("Good morning. Goodbye.")
    gap = int(rate * 0.150)
    zero_runs = np.diff(np.flatnonzero(np.r_[1, whole, 1]))  # gaps between non-zero samples
    assert zero_runs.max() > gap  # the inserted pause (Piper's own trailing silence adds a little)


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_text_is_rejected(tts, text):
    with pytest.raises(ValueError, match="empty"):
        tts.synthesize(text)


def test_non_string_text_is_rejected(tts):
    with pytest.raises(TypeError, match="str"):
        list(tts.iter_sentences(b"hello"))  # type: ignore[arg-type]


def test_missing_model_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        PiperTts(tmp_path / "nope.onnx", warm=False)


def test_repository_voices_yaml_loads_and_matches_the_engine(tts):
    voices = load_voices(DEFAULT_VOICES_FILE)
    assert voices["en"].language == "en"
    assert voices["en"].engine_id == tts.engine_id


def test_engine_id_changes_with_settings():
    assert VoiceSpec("en", "en").engine_id != VoiceSpec("en", "en", length_scale=1.2).engine_id


@pytest.mark.parametrize(
    "body,message",
    [
        ("voices: {en: {language: en, engine: espeak}}", "unknown engine 'espeak'"),
        ("voices: {en: {engine: piper}}", "needs a 'language'"),
        ("voices: {en: {language: en, speed: 2}}", "unknown keys \\['speed'\\]"),
        ("voices: {en: {language: en, length_scale: 9}}", "length_scale"),
        ("- en", "expected a mapping"),
    ],
)
def test_bad_voices_yaml_gets_a_specific_error(tmp_path: Path, body, message):
    path = tmp_path / "voices.yaml"
    path.write_text(body)
    with pytest.raises(ValueError, match=message):
        load_voices(path)
