"""PromptCache: render once, reuse from memory and disk, atomic files, clear errors."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicebot.speech.prompts import PromptCache, prompt_key
from voicebot.speech.tts import PiperTts
from voicebot.speech.voices import VoiceSpec


class FakeEngine:
    """Deterministic stand-in: a 1 kHz tone whose length depends on the text."""

    engine_id = "fake-1"
    sample_rate = 16000

    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        t = np.arange(160 * len(text)) / self.sample_rate
        return (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16), self.sample_rate

    def iter_sentences(self, text: str) -> Iterator[np.ndarray]:
        yield self.synthesize(text)[0]


class FakeSpec(VoiceSpec):
    @property
    def engine_id(self) -> str:
        return FakeEngine.engine_id


def fake_cache(directory: Path, loads: list[str] | None = None) -> PromptCache:
    def loader(spec: VoiceSpec) -> FakeEngine:
        if loads is not None:
            loads.append(spec.name)
        return FakeEngine()

    return PromptCache(directory, voices={"en": FakeSpec("en", "en")}, engine_loader=loader)


def test_render_resamples_to_the_requested_rate(tmp_path):
    pcm = fake_cache(tmp_path).render("hello", rate=8000)
    assert pcm.dtype == np.int16 and pcm.size == 160 * 5 // 2


def test_second_render_is_served_without_synthesis(tmp_path):
    cache = fake_cache(tmp_path)
    first = cache.render("Welcome to the bank.")
    second = cache.render("Welcome to the bank.")
    assert cache.synthesized == 1
    assert np.array_equal(first, second)


def test_a_new_cache_on_the_same_directory_reads_disk_and_never_loads_an_engine(tmp_path):
    fake_cache(tmp_path).render("Welcome.", rate=8000)
    loads: list[str] = []
    reopened = fake_cache(tmp_path, loads)
    pcm = reopened.render("Welcome.", rate=8000)
    assert loads == [] and reopened.synthesized == 0 and pcm.size == 160 * 8 // 2


def test_file_is_a_wav_named_by_the_key(tmp_path):
    cache = fake_cache(tmp_path)
    pcm = cache.render("Press one.", rate=8000)
    path = cache.path_for("Press one.", rate=8000)
    assert path.name == prompt_key("Press one.", "en", 8000, "fake-1") + ".wav"
    data, rate = soundfile.read(path, dtype="int16")
    assert rate == 8000 and np.array_equal(data, pcm)
    assert not list(tmp_path.glob(".tmp-*"))  # no temp files left behind


def test_key_depends_on_text_voice_rate_and_engine():
    base = prompt_key("Hi.", "en", 8000, "e1")
    variants = {prompt_key("Hi!", "en", 8000, "e1"), prompt_key("Hi.", "zh", 8000, "e1"),
                prompt_key("Hi.", "en", 16000, "e1"), prompt_key("Hi.", "en", 8000, "e2")}
    assert base not in variants and len(variants) == 4


def test_corrupt_cache_file_is_re_rendered(tmp_path):
    cache = fake_cache(tmp_path)
    cache.path_for("Goodbye.").write_bytes(b"not a wav")
    pcm = cache.render("Goodbye.")
    assert cache.synthesized == 1 and pcm.size > 0
    assert soundfile.read(cache.path_for("Goodbye."), dtype="int16")[0].size == pcm.size


def test_prerender_counts_only_new_prompts(tmp_path):
    cache = fake_cache(tmp_path)
    cache.render("One.")
    assert cache.prerender(["One.", "Two.", "Three.", "Two."]) == 2


def test_returned_audio_is_read_only(tmp_path):
    pcm = fake_cache(tmp_path).render("Hello.")
    with pytest.raises(ValueError):
        pcm[0] = 1


def test_unknown_voice_and_bad_arguments(tmp_path):
    cache = fake_cache(tmp_path)
    with pytest.raises(KeyError, match="unknown voice 'fr'.*en"):
        cache.render("Bonjour.", voice="fr")
    with pytest.raises(ValueError, match="non-empty"):
        cache.render("  ")
    with pytest.raises(ValueError, match="rate"):
        cache.render("Hi.", rate=0)


def test_text_is_normalised_for_the_voice_language_before_synthesis(tmp_path):
    spoken: list[str] = []

    class RecordingEngine(FakeEngine):
        def synthesize(self, text: str) -> tuple[np.ndarray, int]:
            spoken.append(text)
            return super().synthesize(text)

    cache = PromptCache(tmp_path, voices={"en": FakeSpec("en", "en")}, engine_loader=lambda spec: RecordingEngine())
    cache.render("Your balance is $12.50.")
    assert spoken == ["Your balance is twelve dollars and fifty cents."]


def test_real_piper_prompt_at_8khz_is_cached(tmp_path):
    tts = PiperTts()
    cache = PromptCache(tmp_path, engine_loader=lambda spec: tts)
    pcm = cache.render("Your call is important to us.", rate=8000)
    direct, rate = tts.synthesize("Your call is important to us.")
    assert pcm.size == pytest.approx(direct.size * 8000 / rate, rel=0.2)  # Piper adds noise: lengths vary
    assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 1000
    reopened = PromptCache(tmp_path, engine_loader=lambda spec: pytest.fail("engine loaded on a warm cache"))
    assert np.array_equal(reopened.render("Your call is important to us.", rate=8000), pcm)
