"""Whisper ASR round trip: Piper speech -> 8 kHz telephone band -> 16 kHz -> base and tiny.en."""

import numpy as np
import pytest

from voicebot.speech.asr import AsrResult, WhisperAsr
from voicebot.speech.resample import resample
from voicebot.speech.tts import PiperTts

SENTENCE = "I would like to check my account balance, please."
KEY_WORDS = ("check", "account", "balance")


@pytest.fixture(scope="module")
def telephone_speech() -> np.ndarray:
    pcm, rate = PiperTts().synthesize(SENTENCE)
    return resample(resample(pcm, rate, 8000), 8000, 16000)  # G.711-like band limit


@pytest.fixture(scope="module")
def base() -> WhisperAsr:
    return WhisperAsr("base")


@pytest.fixture(scope="module")
def tiny() -> WhisperAsr:
    return WhisperAsr("tiny.en")


def assert_heard(result: AsrResult) -> None:
    words = result.text.lower()
    assert all(word in words for word in KEY_WORDS), result.text
    assert result.confidence > 0.5


def test_base_recognises_telephone_band_speech_and_detects_english(base, telephone_speech):
    result = base.transcribe(telephone_speech, language=None)
    assert_heard(result)
    assert result.language == "en"
    assert result.window_s == 10.0  # detected as English on the short window and decoded there
    assert result.duration_s == pytest.approx(telephone_speech.size / 16000)
    assert result.decode_s > 0


def test_tiny_en_recognises_float_input(tiny, telephone_speech):
    result = tiny.transcribe(telephone_speech.astype(np.float32) / 32768.0, language="en")
    assert_heard(result)


def test_silence_gives_empty_text_and_low_confidence(base):
    result = base.transcribe(np.zeros(2 * 16000, np.int16), language="en")
    assert result.text == ""
    assert result.confidence < 0.3
    assert result.window_s == 0.0  # nothing audible: not decoded (Whisper would hallucinate "you")


@pytest.mark.parametrize("level", [200, 20])
def test_line_noise_gives_empty_text(base, level):
    noise = (np.random.default_rng(level).standard_normal(2 * 16000) * level).astype(np.int16)
    result = base.transcribe(noise, language="en")
    assert result.text == "" and result.confidence < 0.3


@pytest.mark.parametrize("language", [None, "zh"])
def test_mandarin_is_recognised_on_the_full_window(base, language):
    import soundfile

    from pathlib import Path

    audio, rate = soundfile.read(str(Path(__file__).parents[1] / "audio_fixtures" / "zh_refund_status.wav"), dtype="int16")
    result = base.transcribe(resample(audio, rate, 16000), language=language)
    assert result.language == "zh" and result.window_s == 30.0
    assert "退款" in result.text, result.text


def test_audio_longer_than_one_window_is_fully_transcribed(tiny, telephone_speech):
    gap = np.zeros(16000 * 14, np.int16)
    long_audio = np.concatenate([telephone_speech, gap, telephone_speech, gap])
    assert long_audio.size > 30 * 16000
    result = tiny.transcribe(long_audio)
    assert result.text.lower().count("balance") == 2, result.text


def test_english_only_model_refuses_other_languages(tiny, telephone_speech):
    with pytest.raises(ValueError, match="English-only"):
        tiny.transcribe(telephone_speech, language="zh")


@pytest.mark.parametrize(
    "audio,error,message",
    [
        (np.zeros(0, np.int16), ValueError, "empty"),
        (np.zeros((2, 160), np.int16), ValueError, "1-D"),
        (np.zeros(160, np.int32), TypeError, "int16 or float32"),
    ],
)
def test_bad_audio_is_rejected(tiny, audio, error, message):
    with pytest.raises(error, match=message):
        tiny.transcribe(audio)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown Whisper model 'large'"):
        WhisperAsr("large")


def test_english_window_defaults_per_model_and_can_be_configured(tiny, base):
    assert tiny.window_s == 30.0 and base.window_s == 10.0
    assert WhisperAsr("tiny.en", window_s=10, warm=False).window_s == 10.0
    with pytest.raises(ValueError, match="window_s"):
        WhisperAsr("tiny.en", window_s=0.5, warm=False)


@pytest.mark.parametrize("text, looping", [
    ("Can I speak to an agent? Can I speak to an agent?", True),
    ("I'd like to know about your programming courses. I'd like to know about your", True),  # cut short
    ("Yes, yes, yes, yes", True),
    ("Hi, I would like to check my account balance please.", False),
    ("1 2 3 4 5 6", False),
    ("No, that's wrong.", False),
])
def test_repetition_rule(text, looping):
    from voicebot.speech.asr import _repetitive

    assert _repetitive(text) is looping


def test_a_short_window_that_makes_whisper_loop_falls_back_to_the_full_window():
    """A 6 s window makes tiny.en repeat these utterances; the runaway decode is redone on 30 s."""
    import soundfile

    from pathlib import Path

    asr = WhisperAsr("tiny.en", window_s=6.0)
    for name, expected in [("en_return_item", "can i return this item"), ("en_yes", "yes, that's right")]:
        audio, rate = soundfile.read(str(Path(__file__).parents[1] / "audio_fixtures" / f"{name}.wav"), dtype="int16")
        audio = resample(audio, rate, 16000)
        loud = np.flatnonzero(np.abs(audio) > 300)
        result = asr.transcribe(audio[max(0, loud[0] - 1600):loud[-1] + 3200], language="en")
        assert result.text.lower().rstrip(".?!") == expected, result.text


def _count_encodes(asr: WhisperAsr, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count encoder passes (each is one window's encode) by wrapping the model's encode."""
    calls: list[int] = []
    original = asr._model.encode

    def counting(features, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(features.shape[-1])
        return original(features, *args, **kwargs)

    monkeypatch.setattr(asr._model, "encode", counting)
    return calls


def test_a_mandarin_caller_hint_skips_the_short_window_and_a_switch_is_still_detected(base, telephone_speech,
                                                                                        monkeypatch):
    import soundfile

    from pathlib import Path

    audio, rate = soundfile.read(str(Path(__file__).parents[1] / "audio_fixtures" / "zh_refund_status.wav"), dtype="int16")
    mandarin = resample(audio, rate, 16000)
    encodes = _count_encodes(base, monkeypatch)
    unhinted = base.transcribe(mandarin)
    assert encodes == [1000, 3000]  # 10 s try, detected Mandarin, redone on 30 s
    encodes.clear()
    hinted = base.transcribe(mandarin, likely_language="zh")
    assert encodes == [3000]
    assert hinted.language == "zh" and hinted.window_s == 30.0 and hinted.text == unhinted.text
    encodes.clear()
    switched = base.transcribe(telephone_speech, likely_language="zh")  # the caller switched to English
    assert switched.language == "en" and encodes == [3000]
    assert_heard(switched)


@pytest.mark.parametrize(("hints", "language", "expected"), [
    ("balance bill 账户余额 缴费", "zh", "账户余额 缴费"),
    ("balance bill 账户余额 缴费", "en", None),  # English decodes are not biased (see hints_for)
    ("账户余额", "en", None),
    (None, "zh", None),
])
def test_only_mandarin_decodes_get_their_hanzi_hints(hints, language, expected):
    from voicebot.speech.asr import hints_for

    assert hints_for(hints, language) == expected


def test_mandarin_hints_correct_a_misheard_word_and_english_hints_do_not_leak_in(base):
    import soundfile

    from pathlib import Path

    audio, rate = soundfile.read(str(Path(__file__).parents[1] / "audio_fixtures" / "zh_balance.wav"), dtype="int16")
    mandarin = np.concatenate([np.zeros(4800, np.int16), resample(audio, rate, 16000)])  # 0.3 s lead
    plain = base.transcribe(mandarin)
    hinted = base.transcribe(mandarin, hints="balance bill agent 账户余额 缴费 人工服务")
    assert "余额" not in plain.text, plain.text  # without the hint base mishears 余额 on this fixture
    assert hinted.language == "zh" and "余额" in hinted.text, hinted.text
