"""Handlers for dialplans/education.yaml (Bright Future Academy). Every hook takes `ani` (the caller number;
FAILING_CALLERS answer 500) and `lang` (en-US / zh-CN, default English) for the text it returns.

    education.lookup            {}                          -> {known, name, student_id,
                                                                students: [{student_id, name}]}
    education.courses           {topic}                     -> {topic, summary}
    education.verify_student    {student_id, dob: YYYYMMDD} -> {verified, name}
    education.schedule          {student_id}                -> {found, summary}
    education.attendance        {student_id}                -> {found, rate, summary}
    education.schedule_callback {topic, date, time}         -> {scheduled, reference, date, time}
                                                               | {scheduled: false, reason}
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from voicebot.demo_backend import education_data as samples
from voicebot.demo_backend.data import BadRequest, caller_of, require, store

__all__ = ["HANDLERS", "callback_problem"]

_MAX_DAYS_AHEAD = 30


def _zh(args: dict[str, Any]) -> bool:
    return str(args.get("lang", "")).lower().startswith("zh")


def _pick(record: dict[str, Any], key: str, zh: bool) -> Any:
    return record[f"{key}_zh"] if zh else record[key]


def _student(args: dict[str, Any]) -> dict[str, Any]:
    student_id = require(args, "student_id")
    student = samples.STUDENTS.get(student_id)
    if student is None:
        raise BadRequest(f"unknown student_id {student_id!r}: verify the student first")
    return student


def callback_problem(day: dt.date, time: str, today: dt.date, zh: bool) -> str | None:
    """Why advisers cannot call back then (in the caller's language), or None when the slot is fine."""
    start, end = samples.CALLBACK_HOURS
    if day <= today:
        return "请选择明天或之后的日期。" if zh else "please choose a day from tomorrow on."
    if day > today + dt.timedelta(days=_MAX_DAYS_AHEAD):
        return "只能预约30天以内的回电。" if zh else "call-backs can be booked up to 30 days ahead."
    if day.weekday() >= 5:
        return "顾问只在工作日回电。" if zh else "advisers call on weekdays only."
    if not start <= time < end:
        return "回电时间为上午9点至下午6点。" if zh else "advisers call between 9 am and 6 pm."
    return None


# ------------------------------------------------------------------------------------------- handlers


def lookup(args: dict[str, Any]) -> dict[str, Any]:
    ani = caller_of(args)
    zh = _zh(args)
    mine = [{"student_id": student_id, "name": _first_name(student, zh)}
            for student_id, student in samples.STUDENTS.items() if student["ani"] == ani]
    if not mine:
        return {"known": False, "name": "", "student_id": "", "students": []}
    return {"known": True, "name": mine[0]["name"], "student_id": mine[0]["student_id"], "students": mine}


def _first_name(student: dict[str, Any], zh: bool) -> str:
    return str(_pick(student, "name", zh)).split()[0]


def courses(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    topic = require(args, "topic")
    if topic not in samples.COURSES:
        raise BadRequest(f"unknown topic {topic!r}; known: {', '.join(samples.COURSES)}")
    zh = _zh(args)
    if zh:
        parts = [f"{_pick(c, 'name', zh)}，{c['start']}开课，共{c['weeks']}周，学费{c['fee']}元"
                 for c in samples.COURSES[topic]]
        summary = "近期开设：" + "；".join(parts) + "。"
    else:
        parts = [f"{c['name']}, starting {c['start']}, {c['weeks']} weeks, {c['fee']} yuan"
                 for c in samples.COURSES[topic]]
        summary = "Coming up: " + "; ".join(parts) + "."
    return {"topic": topic, "summary": summary}


def verify_student(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    student = samples.STUDENTS.get(require(args, "student_id"))
    dob = require(args, "dob").replace("-", "")
    if student is None or student["dob"] != dob:
        return {"verified": False}
    return {"verified": True, "name": _pick(student, "name", _zh(args))}


def schedule(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    student, zh = _student(args), _zh(args)
    if zh:
        parts = [f"{c['course_zh']}：{c['days_zh']}{c['time']}，{c['room']}教室" for c in student["classes"]]
        summary = "您的课程安排：" + "；".join(parts) + "。"
    else:
        parts = [f"{c['course']} on {c['days']} at {c['time']} in room {c['room']}" for c in student["classes"]]
        summary = "Your classes: " + "; ".join(parts) + "."
    return {"found": True, "summary": summary}


def attendance(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    student, zh = _student(args), _zh(args)
    lines, lowest = [], 1.0
    for c in student["classes"]:
        rate = c["attended"] / c["held"]
        lowest = min(lowest, rate)
        percent = round(rate * 100)
        lines.append(f"{c['course_zh']}出勤{c['attended']}/{c['held']}次，{percent}%" if zh else
                     f"{c['course']}: {c['attended']} of {c['held']} classes, {percent} percent")
    needed = round(samples.CERTIFICATE_RATE * 100)
    if zh:
        summary = "；".join(lines) + f"。结业证书需要{needed}%出勤。"
        if lowest < samples.CERTIFICATE_RATE:
            summary += "您有课程低于该要求，请与班主任联系补课。"
    else:
        summary = "; ".join(lines) + f". The certificate needs {needed} percent attendance."
        if lowest < samples.CERTIFICATE_RATE:
            summary += " One of your courses is below that; please talk to your teacher about make-up classes."
    return {"found": True, "rate": round(lowest, 3), "summary": summary}


def schedule_callback(args: dict[str, Any]) -> dict[str, Any]:
    ani = caller_of(args)
    text_day, time = require(args, "date"), require(args, "time")
    try:
        day = dt.date.fromisoformat(text_day)
        dt.time.fromisoformat(time)
    except ValueError:
        raise BadRequest(f"'date' must be YYYY-MM-DD and 'time' HH:MM, got {text_day!r} and {time!r}") from None
    problem = callback_problem(day, time, store().today(), _zh(args))
    if problem is not None:
        return {"scheduled": False, "reason": problem}
    reference = store().next_reference("CB")
    store().cases.append({"kind": "callback", "reference": reference, "ani": ani,
                          "topic": str(args.get("topic") or "general"), "date": text_day, "time": time})
    return {"scheduled": True, "reference": reference, "date": text_day, "time": time}


HANDLERS = {
    "education.lookup": lookup,
    "education.courses": courses,
    "education.verify_student": verify_student,
    "education.schedule": schedule,
    "education.attendance": attendance,
    "education.schedule_callback": schedule_callback,
}
