"""yes_no: a yes or a no — words in English and Chinese, the affirm/deny intents, keys 1 (yes) and 2 (no)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from voicebot.dialplan.slot_types._base import SlotType

if TYPE_CHECKING:
    from voicebot.dialplan.schema import AskSpec
    from voicebot.speech.grammar import Grammar

YES = frozenset({
    "yes", "yeah", "yep", "yup", "correct", "right", "sure", "ok", "okay", "affirmative", "true",
    "alright", "absolutely", "definitely", "certainly", "yea", "ya",
    "是", "是的", "对", "对的", "好", "好的", "没错", "可以", "嗯", "行", "是啊", "对啊", "好啊", "确认", "没问题",
})
NO = frozenset({
    "no", "nope", "nah", "wrong", "incorrect", "negative", "false", "not", "never", "don't", "dont",
    "不", "不是", "不对", "错", "错了", "不要", "不用", "不用了", "别", "算了", "没有",
})
# Said as a whole phrase they answer yes/no (the words alone do not: "go", "do", "good")
YES_PHRASES = ("go ahead", "please do", "do it", "sounds good", "of course", "all right", "that's it",
               "that is it", "that's correct", "that is correct")
NO_PHRASES = ("no thanks", "not now", "do not", "not right", "not correct", "not it")
UNSURE = ("don't know", "dont know", "not sure", "no idea", "不知道", "不确定", "不清楚")
HANZI_YES_START = ("是", "对", "好", "嗯", "可以", "没错", "行")
HANZI_NO_START = ("不", "别", "没有", "算了")
YES_INTENTS = frozenset({"affirm", "yes", "confirm"})
NO_INTENTS = frozenset({"deny", "no", "reject"})


class YesNo(SlotType):
    name = "yes_no"
    summary = "yes or no: words in en/zh, intents affirm/deny, keys 1 (yes) / 2 (no)"
    keyed_length = 1
    closed = True
    uses_nlu = False

    def validate(self, ask: AskSpec, value: Any) -> bool | None:
        return value if isinstance(value, bool) else yes_no(str(value))

    def from_keys(self, ask: AskSpec, keys: str) -> bool | None:
        return {"1": True, "2": False}.get(keys)

    def from_intent(self, ask: AskSpec, intent: str) -> bool | None:
        if intent in YES_INTENTS:
            return True
        return False if intent in NO_INTENTS else None

    def grammar(self, ask: AskSpec, known_values: Iterable[str] = ()) -> Grammar | None:
        from voicebot.speech.grammar import yes_no_grammar

        return yes_no_grammar()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+|[^\sa-z\d,.!?，。！？]+", text.lower())


def yes_no(text: str) -> bool | None:
    """True/False when the words answer a yes-or-no question ("yes, please cancel it", "go ahead", "对，取消吧",
    "that's not right"), None when they do not or say both."""
    lowered = text.lower().strip(" .!?。！？")
    if lowered in YES:
        return True
    if lowered in NO:
        return False
    if any(phrase in lowered for phrase in UNSURE):
        return None
    padded = f" {' '.join(_words(lowered))} "
    if any(f" {phrase} " in padded for phrase in NO_PHRASES):
        return False
    words = set(_words(lowered))
    yes = bool(words & YES) or any(f" {phrase} " in padded for phrase in YES_PHRASES)
    no = bool(words & NO)
    if yes != no:
        return yes
    if not yes and lowered[:1] >= "\u3400":  # Mandarin: the answer leads ("好的，帮我取消", "不是这个")
        if lowered.startswith(HANZI_NO_START):
            return False
        if lowered.startswith(HANZI_YES_START):
            return True
    return None


SLOT_TYPE = YesNo()
