"""The interpreter's own words (default retry, confirmation, queue and error prompts), per language."""

from __future__ import annotations

from voicebot.dialplan.prompts import pick_language

__all__ = ["phrase"]

_PHRASES: dict[str, dict[str, str]] = {
    "noinput": {"en": "Sorry, I didn't hear anything.", "zh": "抱歉，我没有听到您的声音。"},
    "nomatch": {"en": "Sorry, I didn't understand.", "zh": "抱歉，我没有听懂。"},
    "confirm": {"en": "I heard {{value}}. Is that right?", "zh": "我听到的是{{value}}，对吗？"},
    "queue_wait": {
        "en": "You are number {{position}} in the queue. The expected wait is about {{minutes}} minutes.",
        "zh": "您前面还有{{position}}位，预计等待约{{minutes}}分钟。",
    },
    "callback_offer": {
        "en": "If you would like us to call you back instead, press 1 or say yes.",
        "zh": "如需我们稍后回电，请按1或说“是”。",
    },
    "answer_offer": {
        "en": "Would you like more detail? Say more or press 1. Say agent to talk to a person, or no to go on.",
        "zh": "需要详细说明吗？请说“详细”或按1；转人工请说“人工”；不需要请说“不用”。",
    },
    "error": {"en": "Sorry, something went wrong. Goodbye.", "zh": "抱歉，系统出现问题，再见。"},
}


def phrase(key: str, lang: str) -> str:
    """The default phrase `key` in `lang` (English when the language has none); a template."""
    return pick_language(_PHRASES[key], lang, "en") or ""
