"""Sample data for the demo backend: customers keyed by caller number, with accounts, cards, loans and orders.

Each running backend owns a `DemoStore` (a deep copy of the samples, so blocking a card in one test never leaks
into another); handlers reach it with `store()`, which the app binds per request. Industry modules keep their own
extra tables in `DemoStore.extra[<industry>]` if they need mutable state.

Caller numbers (E.164, plus the softphone's default caller id "voicebot"):
    +15550100  Alice Chen      en, verified by ID last4 1234 + PIN 2468 or date of birth 1985-04-12
    voicebot   Sam Lee         en, the `voicebot call` softphone's default caller id (ID 9876, PIN 1111)
    +15550101  Robert Miller   en, 84 years old: the elderly-friendly path (ID 4321, PIN 1357, DOB 1942-02-03)
    +15550102  Grace Park      en, VIP, a blocked card already, no orders
    +8613800138000  王芳 (Wang Fang)  zh, ID 5678, PIN 8642, DOB 1990-08-08
    +15550199  any webhook carrying this number as `ani` answers HTTP 500 (FAILING_CALLERS)
Any other number is unknown: lookups answer `{"known": false}`.
"""

from __future__ import annotations

import contextvars
import copy
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BadRequest", "DemoStore", "FAILING_CALLERS", "SURGE_DAYS", "caller_of", "customer_for",
           "is_failing_caller", "new_store", "require", "reset_store", "store", "use_store"]

FAILING_CALLERS = frozenset({"+15550199"})
"""A webhook whose `ani` (or `caller`) is one of these answers 500: exercises dialplans' on_error paths."""

SURGE_DAYS = frozenset({24, 25, 26})
"""Days of the month around the card repayment date (the 25th) when call volume surges."""


class BadRequest(ValueError):
    """Raised by a handler for missing or malformed arguments; the app answers 400 with the message."""


CUSTOMERS: dict[str, dict[str, Any]] = {
    "+15550100": {"id": "C001", "name": "Alice Chen", "lang": "en-US", "dob": "1985-04-12", "id_last4": "1234",
                  "pin": "2468", "vip": False, "elderly": False},
    "voicebot": {"id": "C002", "name": "Sam Lee", "lang": "en-US", "dob": "1979-11-30", "id_last4": "9876",
                 "pin": "1111", "vip": False, "elderly": False},
    "+15550101": {"id": "C003", "name": "Robert Miller", "lang": "en-US", "dob": "1942-02-03", "id_last4": "4321",
                  "pin": "1357", "vip": False, "elderly": True},
    "+15550102": {"id": "C004", "name": "Grace Park", "lang": "en-US", "dob": "1990-01-01", "id_last4": "2222",
                  "pin": "3333", "vip": True, "elderly": False},
    "+8613800138000": {"id": "C005", "name": "王芳", "lang": "zh-CN", "dob": "1990-08-08", "id_last4": "5678",
                       "pin": "8642", "vip": False, "elderly": False},
}

ACCOUNTS: dict[str, list[dict[str, Any]]] = {
    "C001": [{"number": "****4821", "type": "checking", "balance": 2543.18, "currency": "USD", "transactions": [
        {"date": "2026-11-23", "description": "Grocery Mart", "amount": -82.45},
        {"date": "2026-11-21", "description": "Salary", "amount": 3200.00},
        {"date": "2026-11-20", "description": "Electric bill", "amount": -96.10}]}],
    "C002": [{"number": "****7710", "type": "checking", "balance": 120.00, "currency": "USD", "transactions": [
        {"date": "2026-11-22", "description": "Coffee House", "amount": -4.50}]}],
    "C003": [{"number": "****3001", "type": "savings", "balance": 18250.00, "currency": "USD", "transactions": [
        {"date": "2026-11-01", "description": "Pension", "amount": 1850.00},
        {"date": "2026-11-03", "description": "Pharmacy", "amount": -42.00}]}],
    "C004": [{"number": "****5150", "type": "checking", "balance": 99120.50, "currency": "USD",
              "transactions": []}],
    "C005": [{"number": "****6688", "type": "checking", "balance": 8800.00, "currency": "CNY", "transactions": [
        {"date": "2026-11-24", "description": "超市购物", "amount": -256.00},
        {"date": "2026-11-20", "description": "工资", "amount": 12000.00}]}],
}

CARDS: dict[str, list[dict[str, Any]]] = {
    "C001": [{"last4": "4567", "kind": "credit", "status": "active"}],
    "C002": [{"last4": "1188", "kind": "debit", "status": "active"}],
    "C003": [{"last4": "9090", "kind": "debit", "status": "active"}],
    "C004": [{"last4": "0001", "kind": "credit", "status": "blocked"}],
    "C005": [{"last4": "6222", "kind": "credit", "status": "active"},
             {"last4": "8841", "kind": "debit", "status": "active"}],  # two cards: a lost one must be named
}

REPAYMENTS: dict[str, dict[str, Any]] = {
    "C001": {"due_date": "2026-12-25", "statement_balance": 1240.30, "minimum_due": 62.00, "currency": "USD"},
    "C002": {"due_date": "2026-12-25", "statement_balance": 0.0, "minimum_due": 0.0, "currency": "USD"},
    "C005": {"due_date": "2026-12-25", "statement_balance": 3560.00, "minimum_due": 356.00, "currency": "CNY"},
}

LOANS: dict[str, list[dict[str, Any]]] = {
    "C001": [{"loan_id": "L-7781", "kind": "personal", "outstanding": 8400.00, "monthly": 350.00,
              "next_due": "2026-12-05", "extension_eligible": True}],
    "C003": [{"loan_id": "L-1203", "kind": "home equity", "outstanding": 20500.00, "monthly": 610.00,
              "next_due": "2026-12-01", "extension_eligible": False}],
    "C005": [{"loan_id": "L-8866", "kind": "consumer", "outstanding": 30000.00, "monthly": 2600.00,
              "next_due": "2026-12-10", "extension_eligible": True}],
}

# status: processing | shipped | in_transit | out_for_delivery | delivered | cancelled
# special: None | perishable | custom_made | digital | hygiene  (exceptions to the return policy)
ORDERS: dict[str, list[dict[str, Any]]] = {  # newest first
    "C001": [
        {"order_id": "A12-3456", "placed": "2026-11-22", "item": "wireless headphones", "item_zh": "无线耳机",
         "special": None, "status": "in_transit", "carrier": "FastShip", "eta": "2026-11-27", "total": 89.99,
         "refund": None},
        {"order_id": "A12-3001", "placed": "2026-11-02", "item": "running shoes", "item_zh": "跑鞋",
         "special": None, "status": "delivered", "carrier": "FastShip", "eta": "2026-11-06", "total": 120.00,
         "refund": {"status": "processing", "amount": 120.00, "expected": "2026-11-30"}},
    ],
    "C002": [
        {"order_id": "B7-100200", "placed": "2026-11-24", "item": "custom engraved watch", "item_zh": "定制刻字手表",
         "special": "custom_made", "status": "processing", "carrier": None, "eta": "2026-12-04", "total": 310.00,
         "refund": None},
    ],
    "C003": [
        {"order_id": "C3-5500", "placed": "2026-11-20", "item": "fresh fruit box", "item_zh": "新鲜水果礼盒",
         "special": "perishable", "status": "out_for_delivery", "carrier": "CityCourier", "eta": "2026-11-25",
         "total": 45.00, "refund": None},
    ],
    "C005": [
        {"order_id": "D8-8888", "placed": "2026-11-21", "item": "rice cooker", "item_zh": "电饭煲",
         "special": None, "status": "shipped", "carrier": "顺丰", "eta": "2026-11-26", "total": 399.00,
         "refund": {"status": "refunded", "amount": 50.00, "expected": "2026-11-23"}},
    ],
}


@dataclass
class DemoStore:
    """One backend's mutable copy of the sample data."""

    customers: dict[str, dict[str, Any]]
    accounts: dict[str, list[dict[str, Any]]]
    cards: dict[str, list[dict[str, Any]]]
    repayments: dict[str, dict[str, Any]]
    loans: dict[str, list[dict[str, Any]]]
    orders: dict[str, list[dict[str, Any]]]
    cases: list[dict[str, Any]] = field(default_factory=list)
    """Records written by the backend (blocked cards, interceptions, complaints), in order."""
    extra: dict[str, Any] = field(default_factory=dict)
    today: Callable[[], dt.date] = dt.date.today
    surge_days: frozenset[int] = SURGE_DAYS

    def next_reference(self, prefix: str) -> str:
        return f"{prefix}-{len(self.cases) + 1001}"


def new_store(*, today: dt.date | None = None, surge_days: frozenset[int] = SURGE_DAYS) -> DemoStore:
    """A fresh deep copy of the samples; `today` fixes the date the handlers see (tests)."""
    return DemoStore(copy.deepcopy(CUSTOMERS), copy.deepcopy(ACCOUNTS), copy.deepcopy(CARDS),
                     copy.deepcopy(REPAYMENTS), copy.deepcopy(LOANS), copy.deepcopy(ORDERS),
                     today=(lambda: today) if today is not None else dt.date.today, surge_days=surge_days)


_CURRENT: contextvars.ContextVar[DemoStore] = contextvars.ContextVar("demo_store")
_DEFAULT = new_store()


def store() -> DemoStore:
    """The store of the backend serving the current request (a module default outside a request)."""
    return _CURRENT.get(_DEFAULT)


def use_store(value: DemoStore) -> contextvars.Token[DemoStore]:
    return _CURRENT.set(value)


def reset_store(token: contextvars.Token[DemoStore]) -> None:
    _CURRENT.reset(token)


def caller_of(args: Mapping[str, Any]) -> str:
    """The caller number from `ani` (or `caller`) — required by customer-bound hooks."""
    value = args.get("ani", args.get("caller"))
    if value is None or str(value).strip() == "":
        raise BadRequest("missing 'ani' (the caller number)")
    return str(value).strip()


def is_failing_caller(args: Mapping[str, Any]) -> bool:
    value = args.get("ani", args.get("caller"))
    return value is not None and str(value).strip() in FAILING_CALLERS


def customer_for(args: Mapping[str, Any]) -> dict[str, Any] | None:
    """The customer calling from `args['ani']`, or None when the number is unknown."""
    return store().customers.get(caller_of(args))


def require(args: Mapping[str, Any], key: str) -> str:
    """A required, non-empty argument as text."""
    value = args.get(key)
    if value is None or str(value).strip() == "":
        raise BadRequest(f"missing '{key}'")
    return str(value).strip()
