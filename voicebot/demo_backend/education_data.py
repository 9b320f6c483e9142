"""Sample school data for the education demo backend: course catalogue by topic, students and their classes.

Students (check: student number + date of birth keyed as YYYYMMDD):
    100001  Alice Chen  +15550100       DOB 1985-04-12  Python for Beginners 18/20, Business English 9/12
    100002  王芳         +8613800138000  DOB 1990-08-08  IELTS Preparation 10/16 (below the 80 % certificate rule)
"""

from __future__ import annotations

from typing import Any

__all__ = ["CALLBACK_HOURS", "CERTIFICATE_RATE", "COURSES", "STUDENTS"]

CERTIFICATE_RATE = 0.8
"""Attendance needed for the course certificate."""

CALLBACK_HOURS = ("09:00", "18:00")
"""Advisers call back on weekdays within these hours (the end excluded)."""

COURSES: dict[str, list[dict[str, Any]]] = {  # topic -> upcoming courses
    "languages": [
        {"name": "Business English", "name_zh": "商务英语", "start": "2026-12-05", "weeks": 12, "fee": 2400},
        {"name": "Japanese for Beginners", "name_zh": "日语入门", "start": "2026-12-07", "weeks": 10, "fee": 2000},
    ],
    "programming": [
        {"name": "Python for Beginners", "name_zh": "Python入门", "start": "2026-12-01", "weeks": 10, "fee": 3200},
        {"name": "Web Development with Java", "name_zh": "Java Web开发", "start": "2027-01-10", "weeks": 16,
         "fee": 5600},
    ],
    "business": [
        {"name": "Accounting Fundamentals", "name_zh": "会计基础", "start": "2026-12-03", "weeks": 8, "fee": 2800},
    ],
    "exam_prep": [
        {"name": "IELTS Preparation", "name_zh": "雅思备考", "start": "2026-12-02", "weeks": 8, "fee": 4200},
        {"name": "TOEFL Preparation", "name_zh": "托福备考", "start": "2027-01-05", "weeks": 8, "fee": 4200},
    ],
    "design": [
        {"name": "Graphic Design Basics", "name_zh": "平面设计基础", "start": "2026-12-06", "weeks": 12, "fee": 3600},
    ],
}

STUDENTS: dict[str, dict[str, Any]] = {
    "100001": {"name": "Alice Chen", "name_zh": "陈爱丽", "ani": "+15550100", "dob": "19850412", "classes": [
        {"course": "Python for Beginners", "course_zh": "Python入门", "days": "Monday and Wednesday",
         "days_zh": "每周一、周三", "time": "19:00", "room": "B204", "attended": 18, "held": 20},
        {"course": "Business English", "course_zh": "商务英语", "days": "Saturday", "days_zh": "每周六",
         "time": "09:30", "room": "A101", "attended": 9, "held": 12},
    ]},
    "100007": {"name": "Leo Chen", "name_zh": "陈立奥", "ani": "+15550100", "dob": "20100305", "classes": [
        {"course": "Graphic Design Basics", "course_zh": "平面设计基础", "days": "Saturday", "days_zh": "每周六",
         "time": "14:00", "room": "D102", "attended": 7, "held": 8},
    ]},  # Alice's son: two students on one phone number
    "100002": {"name": "Wang Fang", "name_zh": "王芳", "ani": "+8613800138000", "dob": "19900808", "classes": [
        {"course": "IELTS Preparation", "course_zh": "雅思备考", "days": "Tuesday and Thursday",
         "days_zh": "每周二、周四", "time": "19:00", "room": "C310", "attended": 10, "held": 16},
    ]},
}
