"""The five industry dialplans over real SIP: the PJSIP softphone speaks caller fixtures and keys digits.

One `voicebot serve` routes a DID per industry (2001 finance … 2005 education). The softphone calls as user
"voicebot" (Sam Lee in the demo backend, voicebot/demo_backend/data.py). Each call plays one WAV built from
caller fixtures placed at fixed times, optionally keys digits, and hangs up after at most 30 s; the test then
asserts the outcome from the server's "call ended" record: the recognised intent and language, slot values,
the webhooks that answered (`webhook_ok` events) and the queue reached ("queued in <name>": no agent is logged
in, so the caller waits in the queue).

finance, ecommerce, healthcare and education do not follow the caller's language on their own (no
`auto_language`): the Mandarin caller first says "请讲中文" (the global speak_chinese intent), then asks in
Mandarin. airline offers the language at the start and follows the language it hears.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.integration.support import REPO, ServerProcess, start_server, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FIXTURES = REPO / "tests" / "audio_fixtures"
LINE_RATE = 8000
DIDS = {"2001": "finance", "2002": "ecommerce", "2003": "healthcare", "2004": "airline", "2005": "education"}
SAM = {"finance_id_last4": "9876", "finance_pin": "1111", "dob": "19791130", "mrn_last4": "7766"}
"""The softphone's caller (user "voicebot") in the demo backend's samples."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("industry-server")
    running = start_server(workdir, "speech: {workers: 2, asr_model: base}", dialplan="demo", dids=DIDS)
    yield running
    stop_server(running)


def caller_audio(tmp_path: Path, placements: Sequence[tuple[str, float]], name: str = "caller") -> Path:
    """One 8 kHz WAV with each fixture starting at its offset (seconds from the answer)."""
    clips = []
    for fixture, at in placements:
        audio, rate = soundfile.read(str(FIXTURES / f"{fixture}.wav"), dtype="int16")
        assert rate == LINE_RATE, f"{fixture}.wav is {rate} Hz"
        clips.append((int(at * LINE_RATE), audio))
    out = np.zeros(max(start + len(audio) for start, audio in clips), np.int16)
    for start, audio in clips:
        out[start:start + len(audio)] = audio
    path = tmp_path / f"{name}.wav"
    soundfile.write(str(path), out, LINE_RATE, subtype="PCM_16")
    return path


def place_call(server: ServerProcess, did: str, tmp_path: Path, *, play: Path | None = None, dtmf: str = "",
               dtmf_delay: float = 1.0, duration: float) -> dict:
    """Call `did` with the softphone and return the server's "call ended" record of that call."""
    assert duration <= 30
    before = len(server.records("call ended"))
    args = [sys.executable, "-m", "voicebot.cli", "call", f"sip:{did}@{server.host}:{server.port}", "--json",
            "--record", str(tmp_path / "heard.wav"), "--duration", str(duration), "--timeout", str(duration + 15)]
    if play is not None:
        args += ["--play", str(play)]
    if dtmf:
        args += ["--dtmf", dtmf, "--dtmf-delay", str(dtmf_delay)]
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=duration + 40,
                          stdin=subprocess.DEVNULL)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["result"] == "answered", summary
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        records = server.records("call ended")
        if len(records) > before:
            record = records[before]
            assert record["dialplan"] == DIDS[did], record["dialplan"]
            return record
        time.sleep(0.1)
    raise AssertionError("no call ended record\n" + "\n".join(server.lines[-20:]))


class Call:
    """Questions about one call record's transcript."""

    def __init__(self, record: dict) -> None:
        self.record = record
        self.transcript: list[dict] = record["transcript"]
        print(repr(self))  # shown for a failing test, and with -s

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        start = self.transcript[0]["t"] if self.transcript else 0
        lines = [f"{e['t'] - start:6.1f} {e['who']:7} {e['text']} "
                 + json.dumps({k: v for k, v in e.items() if k not in ("t", "who", "text")}, ensure_ascii=False)
                 for e in self.transcript]
        return "call transcript:\n" + "\n".join(lines)

    def utterances(self) -> list[dict]:
        return [e for e in self.transcript if e["who"] == "caller" and e.get("kind") is None]

    def intents(self) -> list[str | None]:
        return [e.get("intent") for e in self.utterances()]

    def events(self, kind: str) -> list[dict]:
        return [e for e in self.transcript if e["who"] == "event" and e["text"] == kind]

    def webhooks(self) -> list[str]:
        return [e["webhook"] for e in self.events("webhook_ok")]

    def slot(self, name: str) -> object:
        values = [e["value"] for e in self.events("slot") if e.get("slot") == name]
        return values[-1] if values else None

    def articles(self) -> list[tuple[str, int]]:
        """(article id, version) of each knowledge answer, as the call record keeps them."""
        return [(e["article"], e["version"]) for e in self.events("knowledge_answer")]

    def languages(self) -> list[str]:
        return [e["lang"] for e in self.events("language")]

    def bot_said(self, words: str) -> bool:
        return any(words in e["text"] for e in self.transcript if e["who"] == "bot")

    def queued_in(self) -> list[str]:
        return [e["text"].removeprefix("queued in ") for e in self.transcript
                if e["who"] == "system" and e["text"].startswith("queued in ")]


# ---------------------------------------------------------------------------------------------------- finance

def test_finance_english_balance_after_two_factor_check(server: ServerProcess, tmp_path: Path) -> None:
    """Spoken request, then the ID's last 4, "1" for the PIN factor and the PIN keyed ahead in one burst."""
    wav = caller_audio(tmp_path, [("en_balance", 2.0)])
    call = Call(place_call(server, "2001", tmp_path, play=wav, duration=20,
                           dtmf=SAM["finance_id_last4"] + "1" + SAM["finance_pin"], dtmf_delay=10))
    assert call.intents()[:1] == ["check_balance"], call
    assert call.webhooks()[-2:] == ["finance.verify", "finance.balance"], call
    assert call.bot_said("Your available balance is 120"), call


def test_finance_mandarin_lost_card_is_blocked(server: ServerProcess, tmp_path: Path) -> None:
    wav = caller_audio(tmp_path, [("zh_speak_chinese", 2.0), ("zh_lost_card", 10.0)])
    call = Call(place_call(server, "2001", tmp_path, play=wav, duration=24,
                           dtmf=SAM["finance_id_last4"] + "1" + SAM["finance_pin"] + "1", dtmf_delay=16))
    assert call.intents()[:2] == ["speak_chinese", "lost_card"], call
    assert [e["lang"] for e in call.utterances()[:2]] == ["zh", "zh"], call
    assert call.languages()[:1] == ["zh-CN"], call
    assert "finance.block_card" in call.webhooks(), call
    assert call.bot_said("尾号1188的银行卡已冻结"), call


# ---------------------------------------------------------------------------------------------------- e-commerce

def test_ecommerce_english_return_policy_names_the_special_item_exception(server: ServerProcess,
                                                                          tmp_path: Path) -> None:
    """Sam's latest order (a custom engraved watch) is spoken unasked; returns are refused for custom-made items."""
    call = Call(place_call(server, "2002", tmp_path, play=caller_audio(tmp_path, [("en_return_item", 2.0)]),
                           duration=16))
    assert call.bot_said("Your latest order, B7-100200, custom engraved watch, is being prepared"), call
    assert call.intents()[:1] == ["return_policy"], call
    assert "ecommerce.return_policy" in call.webhooks(), call
    assert call.articles() == [("shop-returns-custom-made-en", 1)], call  # the rule is a knowledge article
    assert call.bot_said("Custom-made items cannot be returned unless they are faulty"), call


def test_ecommerce_mandarin_refund_status(server: ServerProcess, tmp_path: Path) -> None:
    wav = caller_audio(tmp_path, [("zh_speak_chinese", 2.0), ("zh_refund_status", 10.0)])
    call = Call(place_call(server, "2002", tmp_path, play=wav, duration=21))
    assert call.intents()[:2] == ["speak_chinese", "refund_status"], call
    assert call.languages()[:1] == ["zh-CN"], call
    assert "ecommerce.refund" in call.webhooks(), call
    assert call.bot_said("没有退款申请"), call


# ---------------------------------------------------------------------------------------------------- healthcare

def test_healthcare_english_chest_pain_reaches_the_emergency_queue(server: ServerProcess, tmp_path: Path) -> None:
    call = Call(place_call(server, "2003", tmp_path, play=caller_audio(tmp_path, [("en_chest_pain", 2.0)]),
                           duration=22))
    assert call.intents()[:1] == ["emergency"], call
    assert call.bot_said("This may be an emergency"), call
    assert call.queued_in() == ["emergency"], call


def test_healthcare_mandarin_booking_after_identity_check(server: ServerProcess, tmp_path: Path) -> None:
    """Date of birth and MRN keyed (verified by the backend), then department 1 (family medicine) keyed."""
    wav = caller_audio(tmp_path, [("zh_speak_chinese", 2.0), ("zh_see_doctor", 10.0)])
    call = Call(place_call(server, "2003", tmp_path, play=wav, duration=22,
                           dtmf=SAM["dob"] + SAM["mrn_last4"] + "1", dtmf_delay=16))
    assert call.intents()[:2] == ["speak_chinese", "book_appointment"], call
    assert call.languages()[:1] == ["zh-CN"], call
    assert call.webhooks()[:1] == ["healthcare.verify_patient"], call
    assert call.bot_said("谢谢您，李山姆"), call
    assert call.slot("department") == "family_medicine", call
    assert call.bot_said("您希望哪一天就诊"), call  # the date question follows


def test_healthcare_booking_with_a_keyed_date(server: ServerProcess, tmp_path: Path) -> None:
    """All keys: 1 (book), date of birth, MRN, department 1, the date 2026-12-01, 1 to accept the offered slot."""
    call = Call(place_call(server, "2003", tmp_path, duration=12, dtmf_delay=2,
                           dtmf="1" + SAM["dob"] + SAM["mrn_last4"] + "1" + "20261201" + "1"))
    assert call.slot("department") == "family_medicine", call
    assert call.slot("preferred_date") == "2026-12-01", call
    assert call.webhooks()[-2:] == ["healthcare.find_slot", "healthcare.book"], call
    assert call.bot_said("You're booked for"), call


# ---------------------------------------------------------------------------------------------------- airline

def test_airline_english_compensation_rules_for_the_us(server: ServerProcess, tmp_path: Path) -> None:
    """English chosen by voice at the language offer, then 4 (compensation) and 2 (United States) keyed."""
    wav = caller_audio(tmp_path, [("en_english_please", 1.0)])
    call = Call(place_call(server, "2004", tmp_path, play=wav, dtmf="42", dtmf_delay=8, duration=20))
    assert call.intents()[:1] == ["speak_english"], call
    assert call.slot("region") == "us", call
    assert call.articles() == [("air-compensation-us-en", 2)], call
    assert call.bot_said("In the United States there is no fixed cash compensation for delays"), call


def test_airline_mandarin_compensation_rules_for_china(server: ServerProcess, tmp_path: Path) -> None:
    wav = caller_audio(tmp_path, [("zh_speak_chinese", 1.0)])
    call = Call(place_call(server, "2004", tmp_path, play=wav, dtmf="43", dtmf_delay=8, duration=20))
    assert call.intents()[:1] == ["speak_chinese"], call
    assert call.languages()[:1] == ["zh-CN"], call
    assert call.slot("region") == "china", call
    assert call.articles() == [("air-compensation-china-zh", 2)], call
    assert call.bot_said("国内航班因航空公司原因延误4至8小时"), call


def test_knowledge_search_api_on_the_serving_node(server: ServerProcess) -> None:
    """GET /kb/search on the running server: the articles its dialplans answer with, behind a token."""
    from voicebot.api.tokens import TokenStore
    from tests.integration.support import api_request

    port = server.wait_for("api listening")[0]["port"]
    query = "/kb/search?q=%E8%A1%8C%E6%9D%8E%E6%B2%A1%E5%88%B0&lang=zh&collection=airline"  # 行李没到
    assert api_request(port, "GET", query, None)[0] == 401
    token = TokenStore.load(server.workdir / "tokens.json").create("agent", agent="a1")
    status, body = api_request(port, "GET", query, token)
    assert status == 200 and body["hits"][0]["id"] == "air-delayed-baggage-zh", body


# ---------------------------------------------------------------------------------------------------- education

def test_education_english_course_enquiry_reaches_the_topic_adviser(server: ServerProcess, tmp_path: Path) -> None:
    """The topic comes from the enquiry itself; "1" accepts the adviser, and the caller waits in their queue."""
    wav = caller_audio(tmp_path, [("en_programming_courses", 2.0)])
    call = Call(place_call(server, "2005", tmp_path, play=wav, dtmf="1", dtmf_delay=12, duration=20))
    assert call.intents()[:1] == ["course_enquiry"], call
    assert call.slot("topic") == "programming", call
    assert "education.courses" in call.webhooks(), call
    assert call.bot_said("Python for Beginners"), call
    assert call.queued_in() == ["advisers"], call


def test_education_mandarin_course_enquiry_reaches_the_topic_adviser(server: ServerProcess, tmp_path: Path) -> None:
    wav = caller_audio(tmp_path, [("zh_speak_chinese", 2.0), ("zh_programming_courses", 10.0)])
    call = Call(place_call(server, "2005", tmp_path, play=wav, dtmf="1", dtmf_delay=19, duration=27))
    assert call.intents()[:2] == ["speak_chinese", "course_enquiry"], call
    assert call.languages()[:1] == ["zh-CN"], call
    assert call.slot("topic") == "programming", call
    assert "education.courses" in call.webhooks(), call
    assert call.bot_said("正在为您转接课程顾问"), call
    assert call.queued_in() == ["advisers"], call
