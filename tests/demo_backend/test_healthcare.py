"""Healthcare demo webhooks over HTTP, through the demo backend app (aiohttp test client on loopback)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from voicebot.demo_backend import build_app
from voicebot.demo_backend.data import new_store
from voicebot.demo_backend.healthcare import find_free_slot, triage_text

TODAY = dt.date(2026, 11, 25)  # a Wednesday
ALICE = {"ani": "+15550100", "lang": "en-US"}


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(store=new_store(today=TODAY)), host="127.0.0.1")) as test_client:
        yield test_client


async def call(client: TestClient, name: str, status: int = 200, **args: Any) -> dict[str, Any]:
    response = await client.post(f"/hooks/healthcare.{name}", json=args)
    assert response.status == status, await response.text()
    return await response.json()


async def verified_alice(client: TestClient) -> str:
    result = await call(client, "verify_patient", dob="19850412", mrn_last4="1234", **ALICE)
    assert result == {"verified": True, "patient_id": "P001", "name": "Alice Chen"}
    return result["patient_id"]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_identity_needs_matching_birth_date_and_mrn_digits(client: TestClient) -> None:
    assert await call(client, "verify_patient", dob="1985-04-12", mrn_last4="1234", **ALICE) == {
        "verified": True, "patient_id": "P001", "name": "Alice Chen"}
    assert await call(client, "verify_patient", dob="19850412", mrn_last4="9999", **ALICE) == {"verified": False}
    assert await call(client, "verify_patient", dob="19850413", mrn_last4="1234", **ALICE) == {"verified": False}
    zh = await call(client, "verify_patient", ani="+8613800138000", dob="19900808", mrn_last4="5678", lang="zh-CN")
    assert zh["name"] == "王芳"
    bad = await call(client, "verify_patient", 400, dob="1985-13-45", mrn_last4="1234", **ALICE)
    assert "dob" in bad["error"]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_records_need_a_verified_patient_id(client: TestClient) -> None:
    error = await call(client, "appointments", 400, patient_id="", **ALICE)
    assert "patient_id" in error["error"]
    error = await call(client, "reports", 400, patient_id="P999", **ALICE)
    assert "verify the patient first" in error["error"]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_find_and_book_a_slot_then_it_is_taken(client: TestClient) -> None:
    patient = await verified_alice(client)
    slot = await call(client, "find_slot", department="cardiology", date="2026-11-28", **ALICE)  # a Saturday
    assert slot == {"available": True, "slot_id": "cardiology/2026-11-30/09:00", "date": "2026-11-30",
                    "time": "09:00", "doctor": "Dr. Patel"}
    booked = await call(client, "book", patient_id=patient, slot_id=slot["slot_id"], **ALICE)
    assert booked["booked"] is True and booked["reference"].startswith("HC-")
    assert await call(client, "book", patient_id=patient, slot_id=slot["slot_id"], **ALICE) == {"booked": False}
    after = await call(client, "find_slot", department="cardiology", date="2026-11-30", **ALICE)
    assert (after["date"], after["time"]) == ("2026-11-30", "10:30")
    upcoming = await call(client, "appointments", patient_id=patient, **ALICE)
    assert (upcoming["date"], upcoming["appointment_id"]) == ("2026-11-30", booked["reference"])
    unknown = await call(client, "find_slot", 400, department="astrology", date="2026-11-30", **ALICE)
    assert "unknown department" in unknown["error"]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_reschedule_and_cancel_the_next_appointment(client: TestClient) -> None:
    patient = await verified_alice(client)
    current = await call(client, "appointments", patient_id=patient, lang="zh-CN", ani="+15550100")
    first = {"appointment_id": "AP-5001", "department": "cardiology", "doctor": "帕特尔医生", "date": "2026-12-03",
             "time": "10:30"}
    assert current == {"found": True, **first, "appointments": [first]}
    moved = await call(client, "reschedule", patient_id=patient, appointment_id="AP-5001", date="2026-12-10",
                       **ALICE)
    assert moved == {"rescheduled": True, "date": "2026-12-10", "time": "09:00", "doctor": "Dr. Patel"}
    assert (await call(client, "appointments", patient_id=patient, **ALICE))["date"] == "2026-12-10"
    assert await call(client, "cancel", patient_id=patient, appointment_id="AP-5001", **ALICE) == {"cancelled": True}
    assert await call(client, "appointments", patient_id=patient, **ALICE) == {"found": False}
    again = await call(client, "cancel", 400, patient_id=patient, appointment_id="AP-5001", **ALICE)
    assert "no upcoming appointment" in again["error"]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_every_upcoming_appointment_is_listed_soonest_first(client: TestClient) -> None:
    verified = await call(client, "verify_patient", dob="19900808", mrn_last4="5678", ani="+8613800138000")
    listed = await call(client, "appointments", patient_id=verified["patient_id"], ani="+8613800138000")
    assert [(a["appointment_id"], a["doctor"], a["date"]) for a in listed["appointments"]] == [
        ("AP-5002", "Dr. Chen", "2026-12-08"), ("AP-5004", "Dr. Garcia", "2026-12-15")]
    assert listed["appointment_id"] == "AP-5002"


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_reports_ready_pending_or_none(client: TestClient) -> None:
    ready = await call(client, "reports", patient_id="P001", **ALICE)
    assert ready["ready"] is True and ready["test"] == "blood test" and "room 104" in ready["location"]
    pending = await call(client, "reports", patient_id="P003", ani="+8613800138000", lang="zh-CN")
    assert (pending["ready"], pending["test"], pending["expected"]) == (False, "CT", "2026-12-01")
    assert await call(client, "reports", patient_id="P002", **ALICE) == {"found": False, "ready": False}


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_triage_flags_red_flag_phrases_in_both_languages(client: TestClient) -> None:
    assert await call(client, "triage", text="I've got crushing chest pain", **ALICE) == {
        "urgency": "emergency", "red_flag": "chest_pain"}
    assert (await call(client, "triage", text="他说话不清楚，嘴歪了", ani="+15550100"))["red_flag"] == "stroke"
    assert await call(client, "triage", text="a mild headache since Monday", **ALICE) == {
        "urgency": "nurse", "red_flag": ""}


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_failing_caller_and_missing_caller_number(client: TestClient) -> None:
    failed = await call(client, "triage", 500, ani="+15550199", text="chest pain")
    assert failed["ok"] is False
    missing = await call(client, "triage", 400, text="chest pain")
    assert "ani" in missing["error"]


def test_red_flag_categories() -> None:
    assert triage_text("I CAN'T BREATHE") == "breathing"
    assert triage_text("the wound won’t stop bleeding") == "heavy_bleeding"
    assert triage_text("他突然晕倒了") == "unconscious"
    assert triage_text("my knee is swollen") is None


def test_free_slot_skips_weekends_past_days_and_taken_times() -> None:
    taken = {("2026-11-30", "09:00"), ("2026-11-30", "10:30")}
    assert find_free_slot("cardiology", dt.date(2026, 11, 1), TODAY, taken) == ("2026-11-26", "09:00")
    assert find_free_slot("cardiology", dt.date(2026, 11, 28), TODAY, taken) == ("2026-11-30", "14:00")
