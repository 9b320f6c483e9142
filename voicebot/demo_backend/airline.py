"""Handlers for dialplans/airline.yaml (Example Air). Every hook takes `ani` (the caller number; FAILING_CALLERS
answer 500) and `lang` (en-US / zh-CN, default English) for the text it returns.

    airline.lookup             {}                      -> {known, name, tier, disruption, bookings: [{pnr, flight,
                                                           date, destination}]}
    airline.flight_status      {flight}                -> {found, flight, origin, destination, date, time, gate,
                                                           status, status_text, disrupted}
    airline.booking            {pnr}                   -> {found, ...the flight's status, disruption}
    airline.rebook             {pnr, option}           -> {ok, flight, date, time, reference}  (option first|second|refund)
    airline.baggage_claim      {pnr, bag_tag}          -> {found, claim_id, status_text}
    airline.compensation_rules {region}                -> {summary}                (region eu|us|china|other)

`disruption` is null or {pnr, flight, destination, date, status_text, option1, option2}: the caller's own
cancelled or badly delayed flight with two rebooking options, spoken to the caller before anything else.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from voicebot.demo_backend import airline_data as samples
from voicebot.demo_backend.data import BadRequest, caller_of, require, store

__all__ = ["HANDLERS", "is_disrupted", "status_text"]

_FLIGHT = re.compile(r"^[A-Z0-9]{2}\d{1,4}$")
_PNR = re.compile(r"^[A-Z]{3}\d{3}$")
_OPTIONS = ("first", "second", "refund")


def _tables() -> dict[str, Any]:
    return store().extra.setdefault("airline", {"bookings": copy.deepcopy(samples.BOOKINGS), "claims": {}})


def _zh(args: dict[str, Any]) -> bool:
    return str(args.get("lang", "")).lower().startswith("zh")


def _place(code: str, zh: bool) -> str:
    names = samples.PLACES.get(code, (code, code))
    return names[1] if zh else names[0]


def is_disrupted(flight: dict[str, Any]) -> bool:
    """Cancelled, or delayed by at least DISRUPTION_DELAY_MIN minutes."""
    return flight["status"] == "cancelled" or (
        flight["status"] == "delayed" and flight["delay_min"] >= samples.DISRUPTION_DELAY_MIN)


def status_text(flight: dict[str, Any], zh: bool) -> str:
    """The status as a phrase that follows the flight in a sentence ("is on time" / "准点")."""
    status, delay = flight["status"], flight["delay_min"]
    if status == "cancelled":
        return "已取消" if zh else "has been cancelled"
    if status == "delayed":
        return f"延误约{delay}分钟" if zh else f"is delayed by about {delay} minutes"
    if status == "departed":
        return "已起飞" if zh else "has departed"
    return "计划准点" if zh else "is on time"


def _flight_code(args: dict[str, Any]) -> str:
    code = re.sub(r"[\s-]", "", require(args, "flight")).upper()
    if not _FLIGHT.match(code):
        raise BadRequest(f"'flight' must look like CA981, got {args['flight']!r}")
    return code


def _pnr(args: dict[str, Any]) -> str:
    pnr = re.sub(r"[\s-]", "", require(args, "pnr")).upper()
    if not _PNR.match(pnr):
        raise BadRequest(f"'pnr' must be three letters and three digits, got {args['pnr']!r}")
    return pnr


def _flight_info(code: str, zh: bool) -> dict[str, Any]:
    flight = samples.FLIGHTS[code]
    return {"found": True, "flight": code, "origin": _place(flight["origin"], zh),
            "destination": _place(flight["destination"], zh), "date": flight["date"], "time": flight["time"],
            "gate": flight["gate"], "status": flight["status"], "status_text": status_text(flight, zh),
            "disrupted": is_disrupted(flight)}


def _option_text(code: str, zh: bool) -> str:
    flight = samples.FLIGHTS[code]
    return f"{flight['date']} {flight['time']}的{code}" if zh else f"{code} on {flight['date']} at {flight['time']}"


def _disruption(pnr: str, booking: dict[str, Any], zh: bool) -> dict[str, Any] | None:
    flight = samples.FLIGHTS[booking["flight"]]
    if booking.get("rebooked") or not is_disrupted(flight) or len(booking["alternatives"]) < 2:
        return None
    first, second = booking["alternatives"][:2]
    return {"pnr": pnr, "flight": booking["flight"], "destination": _place(flight["destination"], zh),
            "date": flight["date"], "status_text": status_text(flight, zh),
            "option1": _option_text(first, zh), "option2": _option_text(second, zh)}


# ------------------------------------------------------------------------------------------- handlers


def lookup(args: dict[str, Any]) -> dict[str, Any]:
    ani = caller_of(args)
    passenger = samples.PASSENGERS.get(ani)
    if passenger is None:
        return {"known": False, "name": "", "tier": "", "disruption": None}
    disruption = None
    bookings = []
    for pnr, booking in _tables()["bookings"].items():
        if booking["ani"] == ani:
            disruption = disruption or _disruption(pnr, booking, _zh(args))
            flight = samples.FLIGHTS[booking["flight"]]
            bookings.append({"pnr": pnr, "flight": booking["flight"], "date": flight["date"],
                             "destination": _place(flight["destination"], _zh(args))})
    return {"known": True, "name": passenger["name"], "tier": passenger["tier"], "disruption": disruption,
            "bookings": bookings}


def flight_status(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    code = _flight_code(args)
    if code not in samples.FLIGHTS:
        return {"found": False}
    return _flight_info(code, _zh(args))


def booking(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    pnr = _pnr(args)
    record = _tables()["bookings"].get(pnr)
    if record is None:
        return {"found": False}
    zh = _zh(args)
    return {**_flight_info(record["flight"], zh), "pnr": pnr, "disruption": _disruption(pnr, record, zh)}


def rebook(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    pnr = _pnr(args)
    option = require(args, "option")
    if option not in _OPTIONS:
        raise BadRequest(f"'option' must be one of {', '.join(_OPTIONS)}, got {option!r}")
    record = _tables()["bookings"].get(pnr)
    if record is None or _disruption(pnr, record, False) is None:
        return {"ok": False, "error": "no disrupted flight on this booking"}
    if option == "refund":
        reference = store().next_reference("RF")
        record["rebooked"] = "refund"
        store().cases.append({"kind": "refund", "reference": reference, "pnr": pnr})
        return {"ok": True, "reference": reference}
    new_flight = record["alternatives"][_OPTIONS.index(option)]
    reference = store().next_reference("RB")
    record["rebooked"], record["flight"] = new_flight, new_flight
    store().cases.append({"kind": "rebooking", "reference": reference, "pnr": pnr, "flight": new_flight})
    flight = samples.FLIGHTS[new_flight]
    return {"ok": True, "flight": new_flight, "date": flight["date"], "time": flight["time"], "reference": reference}


def baggage_claim(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    pnr, tag = _pnr(args), require(args, "bag_tag")
    if not (tag.isdigit() and len(tag) == 6):
        raise BadRequest(f"'bag_tag' must be the last 6 digits of the tag, got {tag!r}")
    bag = samples.BAGS.get((pnr, tag))
    if bag is None:
        return {"found": False}
    claims = _tables()["claims"]
    claim_id = claims.get((pnr, tag))
    if claim_id is None:
        claim_id = claims[(pnr, tag)] = store().next_reference("BG")
        store().cases.append({"kind": "baggage_claim", "reference": claim_id, "pnr": pnr, "bag_tag": tag})
    zh = _zh(args)
    if bag["status"] == "located":
        where = _place(bag["where"], zh)
        text = (f"您的行李已在{where}找到，预计{bag['eta']}送到您的地址。" if zh else
                f"Good news: your bag has been found in {where} and will be delivered to you on {bag['eta']}.")
    else:
        text = ("我们正在追踪您的行李，有消息会短信通知您。" if zh else
                "We are tracing your bag and will text you as soon as we find it.")
    return {"found": True, "claim_id": claim_id, "status": bag["status"], "status_text": text}


def compensation_rules(args: dict[str, Any]) -> dict[str, Any]:
    caller_of(args)
    region = require(args, "region")
    if region not in samples.COMPENSATION:
        raise BadRequest(f"'region' must be one of {', '.join(samples.COMPENSATION)}, got {region!r}")
    return {"region": region, "summary": samples.COMPENSATION[region]["zh" if _zh(args) else "en"]}


HANDLERS = {
    "airline.lookup": lookup,
    "airline.flight_status": flight_status,
    "airline.booking": booking,
    "airline.rebook": rebook,
    "airline.baggage_claim": baggage_claim,
    "airline.compensation_rules": compensation_rules,
}
