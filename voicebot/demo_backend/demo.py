"""Handlers for dialplans/demo.yaml (Acme Telecom): caller lookup, account + PIN check, bill payment.

    demo.lookup {ani}              -> {known, name, vip} (empty name for unknown callers)
    demo.verify {account, pin}     -> {verified, name, balance}
    demo.pay    {account, amount}  -> {confirmation, amount}; amount a number or {"amount": n}
"""

from __future__ import annotations

from typing import Any

from voicebot.demo_backend.data import BadRequest, customer_for, require, store

__all__ = ["HANDLERS", "TELECOM_ACCOUNTS"]

TELECOM_ACCOUNTS: dict[str, dict[str, Any]] = {
    "123456": {"pin": "1234", "name": "Ann", "balance": 12.5},
    "222222": {"pin": "0000", "name": "Bo", "balance": 3.0},
    "654321": {"pin": "2468", "name": "Alice Chen", "balance": 42.75},
}


def lookup(args: dict[str, Any]) -> dict[str, Any]:
    customer = customer_for(args)
    if customer is None:
        return {"known": False, "name": "", "vip": False}
    return {"known": True, "name": customer["name"].split()[0], "vip": customer["vip"]}


def verify(args: dict[str, Any]) -> dict[str, Any]:
    account = TELECOM_ACCOUNTS.get(require(args, "account"))
    if account is None or account["pin"] != require(args, "pin"):
        return {"verified": False}
    return {"verified": True, "name": account["name"], "balance": account["balance"]}


def _amount(value: Any) -> float:
    if isinstance(value, dict):
        value = value.get("amount")
    try:
        amount = float(value)
    except (TypeError, ValueError):
        raise BadRequest(f"'amount' must be a number, got {value!r}") from None
    if amount <= 0:
        raise BadRequest(f"'amount' must be positive, got {amount:g}")
    return amount


def pay(args: dict[str, Any]) -> dict[str, Any]:
    account = require(args, "account")
    if account not in TELECOM_ACCOUNTS:
        raise BadRequest(f"unknown account {account!r}")
    amount = _amount(args.get("amount"))
    reference = store().next_reference("AC")
    store().cases.append({"kind": "payment", "reference": reference, "account": account, "amount": amount})
    return {"confirmation": reference, "amount": amount}


HANDLERS = {"demo.lookup": lookup, "demo.verify": verify, "demo.pay": pay}
