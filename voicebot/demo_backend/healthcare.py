"""Handlers for dialplans/healthcare.yaml (Riverside General Hospital). Every hook takes `ani` (the caller
number; FAILING_CALLERS answer 500) and, where text is returned, `lang` (en-US / zh-CN, default English).

    healthcare.verify_patient {dob (YYYYMMDD), mrn_last4}   -> {verified, patient_id, name}
    healthcare.find_slot      {department, date}            -> {available, slot_id, date, time, doctor}
    healthcare.book           {patient_id, slot_id}         -> {booked, reference, date, time, doctor}
    healthcare.appointments   {patient_id}                  -> {found, appointment_id, department, doctor, date, time,
                                                                appointments: [the same fields, each upcoming one]}
    healthcare.reschedule     {patient_id, appointment_id, date} -> {rescheduled, date, time, doctor}
    healthcare.cancel         {patient_id, appointment_id}  -> {cancelled}
    healthcare.reports        {patient_id}                  -> {found, ready, test, location, hours, expected}
    healthcare.triage         {text}                        -> {urgency: emergency|nurse, red_flag}

Records are only served for a `patient_id` that verify_patient returned; an unknown one is a 400.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from voicebot.demo_backend import healthcare_data as samples
from voicebot.demo_backend.data import BadRequest, caller_of, require, store

__all__ = ["HANDLERS", "find_free_slot", "triage_text"]

_SEARCH_DAYS = 21


def _tables() -> dict[str, Any]:
    """This backend's mutable copy of the hospital samples."""
    return store().extra.setdefault("healthcare", {
        "appointments": copy.deepcopy(samples.APPOINTMENTS),
        "reports": copy.deepcopy(samples.REPORTS),
    })


def _zh(args: dict[str, Any]) -> bool:
    return str(args.get("lang", "")).lower().startswith("zh")


def _localised(record: dict[str, Any], key: str, zh: bool) -> str:
    return str(record.get(f"{key}_zh") if zh and f"{key}_zh" in record else record[key])


def _patient(args: dict[str, Any]) -> str:
    patient_id = require(args, "patient_id")
    if patient_id not in samples.PATIENTS:
        raise BadRequest(f"unknown patient_id {patient_id!r}: verify the patient first")
    return patient_id


def _date(args: dict[str, Any], key: str = "date") -> dt.date:
    text = require(args, key)
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"'{key}' must be an ISO date YYYY-MM-DD, got {text!r}") from None


def _department(name: str) -> dict[str, str]:
    if name not in samples.DEPARTMENTS:
        raise BadRequest(f"unknown department {name!r}; known: {', '.join(samples.DEPARTMENTS)}")
    return samples.DEPARTMENTS[name]


def _taken(department: str) -> set[tuple[str, str]]:
    return {(a["date"], a["time"]) for a in _tables()["appointments"]
            if a["department"] == department and a["status"] == "booked"}


def find_free_slot(department: str, wanted: dt.date, today: dt.date,
                   taken: set[tuple[str, str]]) -> tuple[str, str] | None:
    """The first free weekday (date, time) on or after `wanted` (never today or earlier), or None."""
    day = max(wanted, today + dt.timedelta(days=1))
    for _ in range(_SEARCH_DAYS):
        if day.weekday() < 5:
            for time in samples.CLINIC_TIMES:
                if (day.isoformat(), time) not in taken:
                    return day.isoformat(), time
        day += dt.timedelta(days=1)
    return None


def triage_text(text: str) -> str | None:
    """The red-flag category a description matches, or None. Objective phrase matching: no diagnosis."""
    lowered = " ".join(text.lower().replace("’", "'").split())
    for category, phrases in samples.RED_FLAGS.items():
        if any(phrase in lowered for phrase in phrases):
            return category
    return None


# ------------------------------------------------------------------------------------------- handlers


def _birth_date(args: dict[str, Any]) -> str:
    """`dob` as keyed (YYYYMMDD) or ISO (YYYY-MM-DD), returned as ISO."""
    text = require(args, "dob")
    compact = text.replace("-", "")
    try:
        if not (compact.isdigit() and len(compact) == 8):
            raise ValueError
        return dt.date(int(compact[:4]), int(compact[4:6]), int(compact[6:])).isoformat()
    except ValueError:
        raise BadRequest(f"'dob' must be a date as YYYYMMDD or YYYY-MM-DD, got {text!r}") from None


def verify_patient(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    dob, last4 = _birth_date(args), require(args, "mrn_last4")
    if not (last4.isdigit() and len(last4) == 4):
        raise BadRequest(f"'mrn_last4' must be 4 digits, got {last4!r}")
    for patient_id, patient in samples.PATIENTS.items():
        if patient["dob"] == dob and patient["mrn"].endswith(last4):
            return {"verified": True, "patient_id": patient_id, "name": _localised(patient, "name", _zh(args))}
    return {"verified": False}


def find_slot(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    name = require(args, "department")
    department = _department(name)
    found = find_free_slot(name, _date(args), store().today(), _taken(name))
    if found is None:
        return {"available": False}
    date, time = found
    return {"available": True, "slot_id": f"{name}/{date}/{time}", "date": date, "time": time,
            "doctor": _localised(department, "doctor", _zh(args))}


def book(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    patient_id = _patient(args)
    slot_id = require(args, "slot_id")
    try:
        name, date, time = slot_id.split("/")
    except ValueError:
        raise BadRequest(f"malformed slot_id {slot_id!r}; expected department/YYYY-MM-DD/HH:MM") from None
    department = _department(name)
    if (date, time) in _taken(name) or time not in samples.CLINIC_TIMES:
        return {"booked": False}
    reference = store().next_reference("HC")
    _tables()["appointments"].append({"appointment_id": reference, "patient_id": patient_id, "department": name,
                                      "date": date, "time": time, "status": "booked"})
    store().cases.append({"kind": "appointment", "reference": reference, "patient_id": patient_id, "slot": slot_id})
    return {"booked": True, "reference": reference, "date": date, "time": time,
            "doctor": _localised(department, "doctor", _zh(args))}


def _upcoming(patient_id: str) -> list[dict[str, Any]]:
    today = store().today().isoformat()
    mine = [a for a in _tables()["appointments"]
            if a["patient_id"] == patient_id and a["status"] == "booked" and a["date"] >= today]
    return sorted(mine, key=lambda a: (a["date"], a["time"]))


def _appointment(args: dict[str, Any], patient_id: str) -> dict[str, Any]:
    appointment_id = require(args, "appointment_id")
    for appointment in _upcoming(patient_id):
        if appointment["appointment_id"] == appointment_id:
            return appointment
    raise BadRequest(f"no upcoming appointment {appointment_id!r} for this patient")


def appointments(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    upcoming = _upcoming(_patient(args))
    if not upcoming:
        return {"found": False}
    zh = _zh(args)
    listed = [{"appointment_id": a["appointment_id"], "department": a["department"],
               "doctor": _localised(samples.DEPARTMENTS[a["department"]], "doctor", zh), "date": a["date"],
               "time": a["time"]} for a in upcoming]
    return {"found": True, **listed[0], "appointments": listed}


def reschedule(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    appointment = _appointment(args, _patient(args))
    name = appointment["department"]
    found = find_free_slot(name, _date(args), store().today(), _taken(name))
    if found is None:
        return {"rescheduled": False}
    appointment["date"], appointment["time"] = found
    store().cases.append({"kind": "reschedule", "appointment_id": appointment["appointment_id"], "date": found[0],
                          "time": found[1]})
    return {"rescheduled": True, "date": found[0], "time": found[1],
            "doctor": _localised(samples.DEPARTMENTS[name], "doctor", _zh(args))}


def cancel(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    appointment = _appointment(args, _patient(args))
    appointment["status"] = "cancelled"
    store().cases.append({"kind": "cancellation", "appointment_id": appointment["appointment_id"]})
    return {"cancelled": True}


def reports(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    mine = _tables()["reports"].get(_patient(args), [])
    if not mine:
        return {"found": False, "ready": False}
    zh = _zh(args)
    report = mine[0]
    return {"found": True, "ready": report["ready"], "test": _localised(report, "test", zh),
            "expected": report["expected"], "location": _localised(samples.PICKUP, "location", zh),
            "hours": _localised(samples.PICKUP, "hours", zh)}


def triage(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    red_flag = triage_text(require(args, "text"))
    return {"urgency": "emergency" if red_flag else "nurse", "red_flag": red_flag or ""}


HANDLERS = {
    "healthcare.verify_patient": verify_patient,
    "healthcare.find_slot": find_slot,
    "healthcare.book": book,
    "healthcare.appointments": appointments,
    "healthcare.reschedule": reschedule,
    "healthcare.cancel": cancel,
    "healthcare.reports": reports,
    "healthcare.triage": triage,
}
