"""Sample hospital data for the healthcare demo backend, and the red-flag phrase list used for triage.

Patients (identity: date of birth + last 4 digits of the MRN; the caller number is never enough):
    P001  Alice Chen    DOB 1985-04-12  MRN 00451234 (last4 1234)  cardiology appointment, blood test report ready
    P002  Sam Lee       DOB 1979-11-30  MRN 00987766 (last4 7766)  no appointment, no report
    P003  王芳           DOB 1990-08-08  MRN 00335678 (last4 5678)  dermatology appointment, CT report pending
Dates are in late 2026, like the other demo data; `DemoStore.today()` decides what is "upcoming".
"""

from __future__ import annotations

from typing import Any

__all__ = ["APPOINTMENTS", "CLINIC_TIMES", "DEPARTMENTS", "PATIENTS", "RED_FLAGS", "REPORTS"]

PATIENTS: dict[str, dict[str, Any]] = {
    "P001": {"name": "Alice Chen", "name_zh": "陈爱丽", "dob": "1985-04-12", "mrn": "00451234"},
    "P002": {"name": "Sam Lee", "name_zh": "李山姆", "dob": "1979-11-30", "mrn": "00987766"},
    "P003": {"name": "Wang Fang", "name_zh": "王芳", "dob": "1990-08-08", "mrn": "00335678"},
}

DEPARTMENTS: dict[str, dict[str, str]] = {
    "family_medicine": {"doctor": "Dr. Okafor", "doctor_zh": "奥卡福医生"},
    "cardiology": {"doctor": "Dr. Patel", "doctor_zh": "帕特尔医生"},
    "pediatrics": {"doctor": "Dr. Lin", "doctor_zh": "林医生"},
    "orthopedics": {"doctor": "Dr. Garcia", "doctor_zh": "加西亚医生"},
    "dermatology": {"doctor": "Dr. Chen", "doctor_zh": "陈医生"},
}

CLINIC_TIMES: tuple[str, ...] = ("09:00", "10:30", "14:00", "15:30")
"""Appointment times offered on every weekday in every department."""

APPOINTMENTS: list[dict[str, Any]] = [
    {"appointment_id": "AP-5001", "patient_id": "P001", "department": "cardiology", "date": "2026-12-03",
     "time": "10:30", "status": "booked"},
    {"appointment_id": "AP-5002", "patient_id": "P003", "department": "dermatology", "date": "2026-12-08",
     "time": "14:00", "status": "booked"},
    {"appointment_id": "AP-5004", "patient_id": "P003", "department": "orthopedics", "date": "2026-12-15",
     "time": "09:30", "status": "booked"},  # two upcoming: the caller must say which one
]

REPORTS: dict[str, list[dict[str, Any]]] = {
    "P001": [{"test": "blood test", "test_zh": "血常规", "ready": True, "expected": "2026-11-20"}],
    "P003": [{"test": "CT scan", "test_zh": "CT", "ready": False, "expected": "2026-12-01"}],
}

PICKUP = {
    "location": "outpatient lab, ground floor, room 104", "location_zh": "门诊一楼104室检验科",
    "hours": "Monday to Friday, 8 am to 5 pm", "hours_zh": "周一至周五上午8点至下午5点",
}

RED_FLAGS: dict[str, tuple[str, ...]] = {
    "chest_pain": ("chest pain", "chest hurts", "pain in my chest", "pressure in my chest", "chest pressure",
                   "heart attack", "胸痛", "胸口疼", "胸口痛", "胸口压", "胸闷", "心脏病发作"),
    "breathing": ("can't breathe", "cannot breathe", "can not breathe", "trouble breathing",
                  "difficulty breathing", "short of breath", "shortness of breath", "not breathing", "choking",
                  "呼吸困难", "喘不上气", "喘不过气", "上不来气", "没有呼吸", "噎住"),
    "heavy_bleeding": ("heavy bleeding", "bleeding heavily", "bleeding a lot", "won't stop bleeding",
                       "severe bleeding", "lot of blood", "大出血", "大量出血", "流血不止", "血止不住", "止不住血"),
    "stroke": ("stroke", "face drooping", "face is drooping", "slurred", "numbness on one side",
               "sudden weakness", "can't speak", "中风", "嘴歪", "口齿不清", "说话不清", "半边身子", "突然无力",
               "偏瘫"),
    "unconscious": ("unconscious", "collapsed", "passed out", "unresponsive", "昏迷", "晕倒", "不省人事",
                    "叫不醒"),
}
"""Objective red-flag phrases (lower case) by category; any match means emergency, whatever else was said."""
