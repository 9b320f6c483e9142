"""E-commerce demo webhooks for dialplans/ecommerce.yaml.

    ecommerce.lookup        {ani}                          -> {known, name, has_order, order: {...}, orders: [...]}
    ecommerce.order         {order_id, ani?}               -> {found, order: {...}}
    ecommerce.refund        {order_id}                     -> {found, has_refund, refund_status, amount, expected}
    ecommerce.return_policy {order_id}                     -> {found, returnable, window_days, special, reason}
    ecommerce.intercept     {order_id}                     -> {found, intercepted, reason, reference?}
    ecommerce.complaint     {ani, order_id?, category, details?} -> {case_id, category, skill}

An order is `{order_id, placed, item, item_zh, special, status, carrier, eta, total, refund}`; `special` is None or
one of `RETURN_EXCEPTIONS` (items outside the standard return policy); `status` one of processing, shipped,
in_transit, out_for_delivery, delivered, cancelled. Only orders not yet out for delivery can be intercepted.
"""

from __future__ import annotations

import re
from typing import Any

from voicebot.demo_backend.data import BadRequest, customer_for, require, store

__all__ = ["COMPLAINT_SKILLS", "HANDLERS", "INTERCEPTABLE", "RETURN_EXCEPTIONS", "RETURN_WINDOW_DAYS"]

RETURN_WINDOW_DAYS = 30
RETURN_EXCEPTIONS = {
    "perishable": "fresh and perishable goods can only be refunded if they arrive damaged or spoiled",
    "custom_made": "custom-made items cannot be returned unless they are faulty",
    "digital": "digital goods cannot be returned once downloaded",
    "hygiene": "opened hygiene products cannot be returned",
}
INTERCEPTABLE = frozenset({"processing", "shipped", "in_transit"})
COMPLAINT_SKILLS = {"seller": "seller_support", "logistics": "logistics"}


def _public(order: dict[str, Any]) -> dict[str, Any]:
    """The order as the dialplan sees it, with derived flags."""
    refund = order.get("refund") or {}
    return {**{k: v for k, v in order.items() if k != "refund"},
            "interceptable": order["status"] in INTERCEPTABLE,
            "returnable": order.get("special") is None,
            "refund_status": refund.get("status", "none")}


def _compact(order_id: str) -> str:
    """Upper-case letters and digits only: "a12 3456" and "A12-3456" are the same order."""
    return re.sub(r"[^A-Z0-9]", "", order_id.upper())


def _find(order_id: str) -> dict[str, Any] | None:
    wanted = _compact(order_id)
    for orders in store().orders.values():
        for order in orders:
            if _compact(order["order_id"]) == wanted:
                return order
    return None


def lookup(args: dict[str, Any]) -> dict[str, Any]:
    customer = customer_for(args)
    if customer is None:
        return {"known": False, "name": "", "has_order": False}
    orders = store().orders.get(customer["id"], [])
    result: dict[str, Any] = {"known": True, "name": customer["name"], "first_name": customer["name"].split()[0],
                              "vip": customer["vip"], "has_order": bool(orders), "order_count": len(orders)}
    if orders:
        result["order"] = _public(orders[0])
        result["orders"] = [_public(order) for order in orders]  # newest first: what "my shoes" may refer to
    return result


def order(args: dict[str, Any]) -> dict[str, Any]:
    found = _find(require(args, "order_id"))
    return {"found": False} if found is None else {"found": True, "order": _public(found)}


def refund(args: dict[str, Any]) -> dict[str, Any]:
    found = _find(require(args, "order_id"))
    if found is None:
        return {"found": False, "has_refund": False}
    info = found.get("refund")
    if not info:
        return {"found": True, "has_refund": False, "refund_status": "none"}
    return {"found": True, "has_refund": True, "refund_status": info["status"], "amount": info["amount"],
            "expected": info["expected"]}


def return_policy(args: dict[str, Any]) -> dict[str, Any]:
    found = _find(require(args, "order_id"))
    if found is None:
        return {"found": False, "returnable": False, "window_days": RETURN_WINDOW_DAYS}
    special = found.get("special")
    return {"found": True, "returnable": special is None, "window_days": RETURN_WINDOW_DAYS, "special": special,
            "reason": RETURN_EXCEPTIONS.get(special, "") if special else ""}


def intercept(args: dict[str, Any]) -> dict[str, Any]:
    found = _find(require(args, "order_id"))
    if found is None:
        return {"found": False, "intercepted": False, "reason": "not_found"}
    if found["status"] not in INTERCEPTABLE:
        return {"found": True, "intercepted": False, "reason": found["status"]}
    found["status"] = "cancelled"
    reference = store().next_reference("INT")
    store().cases.append({"kind": "interception", "reference": reference, "order_id": found["order_id"]})
    return {"found": True, "intercepted": True, "reason": "", "reference": reference}


def complaint(args: dict[str, Any]) -> dict[str, Any]:
    category = require(args, "category")
    if category not in COMPLAINT_SKILLS:
        raise BadRequest(f"'category' must be one of {', '.join(COMPLAINT_SKILLS)}, got {category!r}")
    customer = customer_for(args)
    case_id = store().next_reference("CASE")
    store().cases.append({"kind": "complaint", "reference": case_id, "category": category,
                          "customer": customer["id"] if customer else None,
                          "order_id": str(args.get("order_id") or ""), "details": str(args.get("details") or "")})
    return {"case_id": case_id, "category": category, "skill": COMPLAINT_SKILLS[category]}


HANDLERS = {
    "ecommerce.lookup": lookup,
    "ecommerce.order": order,
    "ecommerce.refund": refund,
    "ecommerce.return_policy": return_policy,
    "ecommerce.intercept": intercept,
    "ecommerce.complaint": complaint,
}
