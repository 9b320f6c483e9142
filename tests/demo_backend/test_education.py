"""Education demo webhooks over HTTP, through the demo backend app (aiohttp test client on loopback)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from voicebot.demo_backend import build_app
from voicebot.demo_backend.data import new_store
from voicebot.demo_backend.education import callback_problem

TODAY = dt.date(2026, 11, 25)  # a Wednesday
ALICE = {"ani": "+15550100", "lang": "en-US"}
WANG = {"ani": "+8613800138000", "lang": "zh-CN"}


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(store=new_store(today=TODAY)), host="127.0.0.1")) as test_client:
        yield test_client


async def call(client: TestClient, name: str, status: int = 200, **args: Any) -> dict[str, Any]:
    response = await client.post(f"/hooks/education.{name}", json=args)
    assert response.status == status, await response.text()
    return await response.json()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_lookup_recognises_students_by_number(client: TestClient) -> None:
    assert await call(client, "lookup", **ALICE) == {
        "known": True, "name": "Alice", "student_id": "100001",
        "students": [{"student_id": "100001", "name": "Alice"}, {"student_id": "100007", "name": "Leo"}]}
    assert (await call(client, "lookup", **WANG))["name"] == "王芳"
    assert await call(client, "lookup", ani="+19990000") == {"known": False, "name": "", "student_id": "",
                                                             "students": []}


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_courses_by_topic_in_both_languages(client: TestClient) -> None:
    english = await call(client, "courses", topic="programming", **ALICE)
    assert english["summary"].startswith("Coming up: Python for Beginners, starting 2026-12-01, 10 weeks")
    assert "Java" in english["summary"]
    chinese = await call(client, "courses", topic="exam_prep", **WANG)
    assert "雅思备考，2026-12-02开课" in chinese["summary"]
    bad = await call(client, "courses", 400, topic="cooking", **ALICE)
    assert "unknown topic 'cooking'" in bad["error"]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_student_check_then_schedule_and_attendance(client: TestClient) -> None:
    assert await call(client, "verify_student", student_id="100001", dob="19850412", **ALICE) == {
        "verified": True, "name": "Alice Chen"}
    assert await call(client, "verify_student", student_id="100001", dob="19850413", **ALICE) == {"verified": False}
    assert await call(client, "verify_student", student_id="999999", dob="19850412", **ALICE) == {"verified": False}
    timetable = await call(client, "schedule", student_id="100001", **ALICE)
    assert "Python for Beginners on Monday and Wednesday at 19:00 in room B204" in timetable["summary"]
    alice = await call(client, "attendance", student_id="100001", **ALICE)
    assert alice["rate"] == 0.75 and "18 of 20 classes, 90 percent" in alice["summary"]
    assert "below that" in alice["summary"]  # Business English 9/12
    wang = await call(client, "attendance", student_id="100002", **WANG)
    assert wang["rate"] == 0.625 and "10/16" in wang["summary"]
    unknown = await call(client, "schedule", 400, student_id="123456", **ALICE)
    assert "verify the student first" in unknown["error"]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_callback_is_booked_only_on_weekday_office_hours(client: TestClient) -> None:
    booked = await call(client, "schedule_callback", topic="design", date="2026-11-26", time="15:00", **ALICE)
    assert booked["scheduled"] is True and booked["reference"].startswith("CB-")
    weekend = await call(client, "schedule_callback", topic="design", date="2026-11-28", time="15:00", **ALICE)
    assert weekend == {"scheduled": False, "reason": "advisers call on weekdays only."}
    late = await call(client, "schedule_callback", date="2026-11-26", time="19:30", **WANG)
    assert late == {"scheduled": False, "reason": "回电时间为上午9点至下午6点。"}
    bad = await call(client, "schedule_callback", 400, date="tomorrow", time="15:00", **ALICE)
    assert "YYYY-MM-DD" in bad["error"]
    failing = await call(client, "schedule_callback", 500, date="2026-11-26", time="15:00", ani="+15550199")
    assert failing["ok"] is False


def test_callback_rules() -> None:
    assert callback_problem(TODAY, "10:00", TODAY, zh=False) == "please choose a day from tomorrow on."
    assert callback_problem(TODAY + dt.timedelta(days=31), "10:00", TODAY, zh=False) is not None
    assert callback_problem(dt.date(2026, 11, 27), "09:00", TODAY, zh=False) is None
    assert callback_problem(dt.date(2026, 11, 27), "18:00", TODAY, zh=False) == "advisers call between 9 am and 6 pm."
