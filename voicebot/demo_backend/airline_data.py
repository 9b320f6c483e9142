"""Sample airline data for the airline demo backend: flights, bookings keyed by reference, bags, region rules.

Bookings (the caller number links a booking to its passenger, which drives proactive disruption mode):
    ABC123  Alice Chen  +15550100       UA889 SFO->PEK  cancelled        -> disruption, rebooking offered
    XYZ789  王芳         +8613800138000  MU5101 SHA->PEK delayed 180 min  -> disruption, rebooking offered
    DEF456  Sam Lee     voicebot        CA981 PEK->JFK  on time          (bag tag ...345678 delayed, located)
A flight is disrupted when it is cancelled or delayed by DISRUPTION_DELAY_MIN minutes or more.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BAGS", "BOOKINGS", "COMPENSATION", "DISRUPTION_DELAY_MIN", "FLIGHTS", "PASSENGERS", "PLACES"]

DISRUPTION_DELAY_MIN = 120

PLACES: dict[str, tuple[str, str]] = {  # airport code -> (English, Chinese)
    "PEK": ("Beijing", "北京"), "SHA": ("Shanghai", "上海"), "JFK": ("New York", "纽约"),
    "SFO": ("San Francisco", "旧金山"), "LHR": ("London", "伦敦"),
}

# status: on_time | delayed | cancelled | departed
FLIGHTS: dict[str, dict[str, Any]] = {
    "CA981": {"origin": "PEK", "destination": "JFK", "date": "2026-11-25", "time": "13:00", "gate": "E12",
              "status": "on_time", "delay_min": 0},
    "CA982": {"origin": "JFK", "destination": "PEK", "date": "2026-11-25", "time": "16:40", "gate": "",
              "status": "delayed", "delay_min": 45},
    "MU5101": {"origin": "SHA", "destination": "PEK", "date": "2026-11-25", "time": "08:00", "gate": "A3",
               "status": "delayed", "delay_min": 180},
    "MU5103": {"origin": "SHA", "destination": "PEK", "date": "2026-11-25", "time": "10:00", "gate": "A5",
               "status": "on_time", "delay_min": 0},
    "MU5105": {"origin": "SHA", "destination": "PEK", "date": "2026-11-25", "time": "12:00", "gate": "A7",
               "status": "on_time", "delay_min": 0},
    "UA889": {"origin": "SFO", "destination": "PEK", "date": "2026-11-25", "time": "11:05", "gate": "",
              "status": "cancelled", "delay_min": 0},
    "UA851": {"origin": "SFO", "destination": "PEK", "date": "2026-11-26", "time": "11:05", "gate": "G92",
              "status": "on_time", "delay_min": 0},
    "UA857": {"origin": "SFO", "destination": "PEK", "date": "2026-11-26", "time": "13:20", "gate": "G98",
              "status": "on_time", "delay_min": 0},
}

PASSENGERS: dict[str, dict[str, str]] = {
    "+15550100": {"name": "Alice", "tier": "gold"},
    "+8613800138000": {"name": "王芳", "tier": "silver"},
    "voicebot": {"name": "Sam", "tier": "member"},
}

BOOKINGS: dict[str, dict[str, Any]] = {
    "ABC123": {"ani": "+15550100", "flight": "UA889", "alternatives": ["UA851", "UA857"]},
    "XYZ789": {"ani": "+8613800138000", "flight": "MU5101", "alternatives": ["MU5103", "MU5105"]},
    "DEF456": {"ani": "voicebot", "flight": "CA981", "alternatives": []},
}

BAGS: dict[tuple[str, str], dict[str, str]] = {  # (booking reference, last 6 digits of the tag)
    ("DEF456", "345678"): {"status": "located", "where": "JFK", "eta": "2026-11-26"},
    ("ABC123", "112233"): {"status": "tracing", "where": "", "eta": ""},
}

COMPENSATION: dict[str, dict[str, str]] = {
    "eu": {
        "en": "Under EU and UK passenger rules, for flights departing Europe or the UK, or arriving there on a "
              "European airline, an arrival delay of three hours or more, or a cancellation with less than 14 "
              "days' notice, can give 250 to 600 euros depending on distance, unless extraordinary circumstances "
              "such as weather caused it. You are also entitled to meals and, if needed, a hotel.",
        "zh": "根据欧盟及英国旅客权益规定，从欧洲或英国出发，或乘坐欧洲航空公司抵达欧洲的航班，到达延误三小时以上，或提前"
              "不足14天通知取消的，按航程距离可获250至600欧元赔偿，天气等非常情况除外。您还可获得餐食，必要时提供住宿。",
    },
    "us": {
        "en": "In the United States, if your flight is cancelled or significantly changed, or delayed by three "
              "hours on domestic or six hours on international flights, and you choose not to travel, you are "
              "entitled to a full refund. There is no fixed cash compensation for delays.",
        "zh": "在美国，航班取消或发生重大变更，或国内航班延误三小时、国际航班延误六小时以上，您选择不再出行的，可获全额退款。"
              "延误没有固定的现金赔偿。",
    },
    "china": {
        "en": "Under Chinese civil aviation rules, when a delay or cancellation is the airline's responsibility we "
              "provide meals or a hotel, and compensation of 200 yuan for a delay of four to eight hours, or 400 "
              "yuan for more than eight hours. Delays caused by weather or air traffic control are not compensated.",
        "zh": "根据中国民航规定，因航空公司原因造成延误或取消的，我们提供餐食或住宿；延误4至8小时补偿200元，超过8小时补偿"
              "400元。天气、空中管制等原因造成的延误不予补偿。",
    },
    "other": {
        "en": "Compensation depends on the country of departure and your ticket conditions. An agent can check "
              "your case; press 0 to talk to one.",
        "zh": "赔偿标准取决于出发国家和客票规则，人工客服可以为您具体核实，请按0转人工。",
    },
}
