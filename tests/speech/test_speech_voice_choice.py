"""Which voice speaks a text: the call's language, except English-only text in a Mandarin call (pure logic)."""

import pytest

from voicebot.speech.services import voice_for


@pytest.mark.parametrize(
    ("lang", "text", "voice"),
    [
        ("en-US", "Your balance is 42 dollars.", "en"),
        ("zh-CN", "您的余额是42美元。", "zh"),
        ("zh-CN", "Now your four digit PIN.", "en"),  # untranslated prompt: the Mandarin voice reads Hanzi only
        ("zh-CN", "您的确认号码是AC1001。", "zh"),  # Hanzi with a Latin id stays Mandarin
        ("zh-CN", "123456", "zh"),  # digits are read in Mandarin
        ("zh", "", "zh"),
        (None, "hello", "en"),
        ("en-GB", "您好", "en"),  # an English call never switches voice by script
    ],
)
def test_voice_for_language_and_text(lang, text, voice):
    assert voice_for(lang, text) == voice
