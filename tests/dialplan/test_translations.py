"""Validate warns (file:line, what callers hear, the fix) when a bilingual dialplan's prompt lacks a language."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.dialplan.cli import main
from voicebot.dialplan.loader import load_dialplan
from voicebot.dialplan.translations import find_gap, written_in
from voicebot.yamlsrc import YamlSourceError

BILINGUAL = "dialplan: x\nlanguages: [en-US, zh-CN]\nstart: a\nnodes:\n  a:\n"
NO_ZH = "no Mandarin (zh) text: Mandarin callers hear it in English, in the English voice"
NO_EN = "no English (en) text: English callers hear the Mandarin text, read by the English voice"
FIX = 'write say: {en: "...", zh: "..."}'


def warnings_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    found: list[YamlSourceError] = []
    load_dialplan(path, warnings=found)
    return [str(w).replace(f"{path}:", "", 1) for w in found]


def test_plain_string_say_in_bilingual_dialplan_warns(tmp_path: Path) -> None:
    assert warnings_of(tmp_path, BILINGUAL + '    say: "Hello {{ vars.name }}"\n    hangup: true\n') == [
        f"6:5: node 'a' (say): {NO_ZH} — {FIX}"]


def test_map_missing_zh_warns_at_the_prompt(tmp_path: Path) -> None:
    assert warnings_of(tmp_path, BILINGUAL + '    say: {en-US: "Hello"}\n    hangup: true\n') == [
        f"6:5: node 'a' (say): {NO_ZH} — {FIX}"]


def test_hanzi_only_prompt_is_missing_english(tmp_path: Path) -> None:
    assert warnings_of(tmp_path, BILINGUAL + '    say: "您好，再见。"\n    hangup: true\n') == [
        f"6:5: node 'a' (say): {NO_EN} — {FIX}"]


def test_fully_translated_template_only_and_audio_only_prompts_do_not_warn(tmp_path: Path) -> None:
    text = BILINGUAL + (
        '    say:\n'
        '      - {en: "Hello", zh: "您好"}\n'
        '      - "{{ vars.amount }} <break time=\\"500ms\\"/>"\n'
        '      - {audio: greeting.wav}\n'
        '      - {text: {en: "Bye", zh-CN: "再见"}, barge_in: none}\n'
        '    hangup: true\n')
    assert warnings_of(tmp_path, text) == []


def test_single_language_dialplan_never_warns(tmp_path: Path) -> None:
    text = BILINGUAL.replace("[en-US, zh-CN]", "[en-US]") + '    say: "Hello"\n    hangup: true\n'
    assert warnings_of(tmp_path, text) == []
    assert find_gap("您好", ["zh-CN", "zh-TW"]) is None


def test_line_is_that_of_the_prompt_deep_in_the_node(tmp_path: Path) -> None:
    text = BILINGUAL + (
        '    ask:\n'
        '      slot: n\n'
        '      type: digits\n'
        '      say: {en: "Your number?", zh: "您的号码？"}\n'
        '      reprompts:\n'
        '        - {en: "Again?", zh: "再说一次？"}\n'
        '        - "Once more, please."\n'                      # line 12
        '      confirm: {text: {zh: "对吗？"}}\n'               # line 13
        '    listen:\n'
        '      intents: {say: a, confirm: {say: {en: "Sure.", zh: "好的。"}, goto: a}}\n'
        '      noinput: {say: [{en: "Hello?", zh: "喂？"}, "Still there?"]}\n'  # line 16
        '      dtmf: {"1": a}\n')
    assert warnings_of(tmp_path, text) == [
        f"12:11: node 'a' (ask.reprompts[1]): {NO_ZH} — write this reprompts entry as {{en: \"...\", zh: \"...\"}}",
        f"13:17: node 'a' (ask.confirm.text): {NO_EN} — write text: {{en: \"...\", zh: \"...\"}}",
        f"16:49: node 'a' (listen.noinput.say[1]): {NO_ZH} — write this say entry as {{en: \"...\", zh: \"...\"}}",
    ]


def test_nodes_named_like_prompt_fields_are_not_prompts(tmp_path: Path) -> None:
    text = BILINGUAL + '    goto: confirm\n  confirm:\n    say: {en: "OK", zh: "好"}\n    hangup: true\n'
    assert warnings_of(tmp_path, text) == []


@pytest.mark.parametrize(("text", "language"), [
    ("Press 1.", "en"), ("请按1。", "zh"), ("请说 yes", "zh"), ("{{ vars.x }} 1, 2.", None), ('<break time="1s"/>', None),
])
def test_written_in_goes_by_script(text: str, language: str | None) -> None:
    assert written_in(text, ["en", "zh"]) == language


def test_validate_prints_the_warning_and_still_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BILINGUAL + '    say: "Hello"\n    hangup: true\n', encoding="utf-8")
    assert main(["validate", "--no-nlu", "--no-compliance", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"warning: {path}:6:5: node 'a' (say): {NO_ZH} — {FIX}" in out
    assert "1 dialplan(s), 0 error(s), 1 warning(s)" in out
