"""Finance (bank/cards) demo webhooks for dialplans/finance.yaml. Every hook takes the caller number as `ani`.

    finance.lookup    {ani}                          -> {known, name, first_name, elderly, vip, lang, surge}
    finance.verify    {ani, id_last4, pin | dob}     -> {verified, name?, method}
    finance.balance   {ani}                          -> {account, balance, currency, transactions, last_*}
    finance.block_card {ani, card_last4?}            -> {blocked, already_blocked, card_last4, reference,
                                                         replacement_days}
    finance.repayment {ani}                          -> {has_statement, due_date, statement_balance, minimum_due,
                                                         currency, surge}
    finance.loan      {ani}                          -> {has_loan, loan_id, kind, outstanding, monthly, next_due,
                                                         extension_eligible}
`surge` is true on the days around the card repayment date (`DemoStore.surge_days`), when lines are busiest.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from voicebot.demo_backend.data import BadRequest, customer_for, require, store

__all__ = ["HANDLERS", "normalise_dob"]


def _is_surge() -> bool:
    return store().today().day in store().surge_days


def _customer(args: dict[str, Any]) -> dict[str, Any]:
    customer = customer_for(args)
    if customer is None:
        raise BadRequest(f"unknown caller {args.get('ani')!r}")
    return customer


def lookup(args: dict[str, Any]) -> dict[str, Any]:
    customer = customer_for(args)
    if customer is None:
        return {"known": False, "name": "", "first_name": "", "elderly": False, "vip": False, "surge": _is_surge()}
    cards = [{"last4": c["last4"], "kind": c["kind"]} for c in store().cards.get(customer["id"], [])
             if c["status"] == "active"]
    return {"known": True, "name": customer["name"], "first_name": customer["name"].split()[0],
            "elderly": customer["elderly"], "vip": customer["vip"], "lang": customer["lang"], "surge": _is_surge(),
            "cards": cards}


def normalise_dob(value: Any) -> str:
    """A date of birth as YYYY-MM-DD from ISO text or keyed YYYYMMDD; BadRequest otherwise."""
    text = str(value).strip().replace("/", "-")
    if len(text) == 8 and text.isdigit():
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise BadRequest(f"'dob' must be a date (YYYY-MM-DD or YYYYMMDD), got {value!r}") from None


def verify(args: dict[str, Any]) -> dict[str, Any]:
    """Two factors: the last 4 of the ID number, and the keyed PIN or the date of birth."""
    id_last4 = require(args, "id_last4")
    pin = str(args.get("pin") or "").strip()
    dob = str(args.get("dob") or "").strip()
    if not pin and not dob:
        raise BadRequest("a second factor is needed: 'pin' or 'dob'")
    customer = customer_for(args)
    method = "pin" if pin else "dob"
    if customer is None or customer["id_last4"] != id_last4:
        return {"verified": False, "method": method}
    second_ok = customer["pin"] == pin if pin else customer["dob"] == normalise_dob(dob)
    if not second_ok:
        return {"verified": False, "method": method}
    return {"verified": True, "name": customer["name"], "method": method}


def balance(args: dict[str, Any]) -> dict[str, Any]:
    accounts = store().accounts.get(_customer(args)["id"], [])
    if not accounts:
        return {"has_account": False}
    account = accounts[0]
    transactions = account["transactions"][:3]
    latest = transactions[0] if transactions else None
    return {"has_account": True, "account": account["number"], "type": account["type"],
            "balance": account["balance"], "currency": account["currency"], "transactions": transactions,
            "transaction_count": len(transactions),
            "last_description": latest["description"] if latest else "",
            "last_amount": latest["amount"] if latest else 0, "last_date": latest["date"] if latest else ""}


def block_card(args: dict[str, Any]) -> dict[str, Any]:
    customer = _customer(args)
    cards = store().cards.get(customer["id"], [])
    wanted = str(args.get("card_last4") or "").strip()
    card = next((c for c in cards if not wanted or c["last4"] == wanted), None)
    if card is None:
        return {"blocked": False, "reason": "no_such_card"}
    already = card["status"] == "blocked"
    card["status"] = "blocked"
    reference = store().next_reference("BLK")
    store().cases.append({"kind": "card_block", "reference": reference, "customer": customer["id"],
                          "card_last4": card["last4"]})
    return {"blocked": True, "already_blocked": already, "card_last4": card["last4"], "reference": reference,
            "replacement_days": 5}


def repayment(args: dict[str, Any]) -> dict[str, Any]:
    statement = store().repayments.get(_customer(args)["id"])
    if statement is None:
        return {"has_statement": False, "surge": _is_surge()}
    return {"has_statement": True, **statement, "surge": _is_surge()}


def loan(args: dict[str, Any]) -> dict[str, Any]:
    loans = store().loans.get(_customer(args)["id"], [])
    if not loans:
        return {"has_loan": False, "extension_eligible": False}
    return {"has_loan": True, **loans[0]}


HANDLERS = {
    "finance.lookup": lookup,
    "finance.verify": verify,
    "finance.balance": balance,
    "finance.block_card": block_card,
    "finance.repayment": repayment,
    "finance.loan": loan,
}
