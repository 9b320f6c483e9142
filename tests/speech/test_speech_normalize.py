"""Text normalisation for TTS, English and Mandarin."""

import pytest

from voicebot.speech.normalize import (
    digits_zh,
    normalize,
    normalize_en,
    normalize_zh,
    number_to_chinese,
    number_to_words_en,
    ordinal_to_words_en,
)


@pytest.mark.parametrize(
    "number,words",
    [(0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (42, "forty-two"), (100, "one hundred"),
     (105, "one hundred five"), (1234, "one thousand two hundred thirty-four"), (1_000_000, "one million"),
     (2_000_017, "two million seventeen"), (-3, "minus three")],
)
def test_english_cardinals(number, words):
    assert number_to_words_en(number) == words


@pytest.mark.parametrize(
    "number,words",
    [(1, "first"), (2, "second"), (3, "third"), (5, "fifth"), (11, "eleventh"), (12, "twelfth"),
     (20, "twentieth"), (21, "twenty-first"), (100, "one hundredth"), (103, "one hundred third")],
)
def test_english_ordinals(number, words):
    assert ordinal_to_words_en(number) == words


@pytest.mark.parametrize(
    "text,spoken",
    [
        ("Your balance is $12.50.", "Your balance is twelve dollars and fifty cents."),
        ("$1 or $0.05 or $1,200", "one dollar or five cents or one thousand two hundred dollars"),
        ("$3.5", "three dollars and fifty cents"),
        ("Open at 14:30", "Open at two thirty PM"),
        ("9:05 am and 12:00 and 0:15", "nine oh five AM and twelve PM and twelve fifteen AM"),
        ("Call 555-123-4567 now", "Call five five five, one two three, four five six seven now"),
        ("(555) 123-4567", "five five five, one two three, four five six seven"),
        ("+44 20 7946 0958", "plus four four, two zero, seven nine four six, zero nine five eight"),
        ("account 12345678", "account one two three four five six seven eight"),
        ("the 1st and 22nd", "the first and twenty-second"),
        ("15% of 3.5", "fifteen percent of three point five"),
        ("1,234,567 items", "one million two hundred thirty-four thousand five hundred sixty-seven items"),
        ("rooms 10 20 30", "rooms ten twenty thirty"),
        ("No digits here.", "No digits here."),
    ],
)
def test_english_sentences(text, spoken):
    assert normalize_en(text) == spoken


@pytest.mark.parametrize(
    "number,numerals",
    [(0, "零"), (10, "十"), (12, "十二"), (20, "二十"), (105, "一百零五"), (1005, "一千零五"),
     (1010, "一千零一十"), (10000, "一万"), (10005, "一万零五"), (110000, "十一万"),
     (100010000, "一亿零一万"), (123456789, "一亿二千三百四十五万六千七百八十九"), (-7, "负七")],
)
def test_chinese_numerals(number, numerals):
    assert number_to_chinese(number) == numerals


@pytest.mark.parametrize(
    "text,spoken",
    [
        ("电话 138-0013-8000", "电话 幺三八，零零幺三，八零零零"),
        ("余额是¥12.50", "余额是十二元五角"),
        ("¥3.05和¥0.5", "三元零五分和五角"),
        ("2024年3月5日14:30", "二零二四年三月五日十四点半"),
        ("8:05开门", "八点零五分开门"),
        ("增长了15%", "增长了百分之十五"),
        ("共105个", "共一百零五个"),
        ("3.14", "三点一四"),
    ],
)
def test_mandarin_sentences(text, spoken):
    assert normalize_zh(text) == spoken


def test_digits_zh_reads_one_as_yao_only_when_asked():
    assert digits_zh("110") == "幺幺零"
    assert digits_zh("110", one_as_yao=False) == "一一零"


def test_dispatch_by_language_tag():
    assert normalize("$2", "en-US") == "two dollars"
    assert normalize("12", "zh_CN") == "十二"
    with pytest.raises(ValueError, match="no text normaliser for language 'fr'"):
        normalize("12", "fr")
