"""Matching the caller's words against their own records (issue 14): named items and spelled or misheard codes."""

from __future__ import annotations

import pytest

from voicebot.dialplan.matching import code_key, code_matches, mentioned

ORDERS = [
    {"order_id": "A12-3456", "item": "wireless headphones", "item_zh": "无线耳机"},
    {"order_id": "A12-3001", "item": "running shoes", "item_zh": "跑鞋"},
]
CODES = [order["order_id"] for order in ORDERS]


@pytest.mark.parametrize(
    ("said", "named"),
    [
        ("What about the refund for my shoes?", ["A12-3001"]), ("我的跑鞋退款到哪了", ["A12-3001"]),
        ("耳机什么时候到", ["A12-3456"]), ("the headphones and the shoes", ["A12-3456", "A12-3001"]),
        ("refund status please", []), ("my order", []), ("", []),
    ],
)
def test_mentioned_keeps_the_records_the_caller_named(said: str, named: list[str]) -> None:
    assert [order["order_id"] for order in mentioned(ORDERS, said, ["item", "item_zh"])] == named


def test_mentioned_ignores_what_is_not_a_list_of_records() -> None:
    assert mentioned(None, "shoes", ["item"]) == [] and mentioned("shoes", "shoes", ["item"]) == []


@pytest.mark.parametrize(
    ("heard", "key"),
    [("A one two, three zero zero one", "A123001"), ("DEF four five six", "DEF456"), ("幺二三", "123"),
     ("my order is A12 dash 3001", "A123001"), ("I don't know", "I")],
)
def test_code_key_reads_spelled_codes(heard: str, key: str) -> None:
    assert code_key(heard) == key


@pytest.mark.parametrize(
    ("heard", "matches", "exact"),
    [
        ("A12, 3001", ["A12-3001"], True),
        ("A12 dash 3011", ["A12-3001"], False),        # one digit misheard
        ("three zero zero one", ["A12-3001"], False),   # the last four only
        ("123001", ["A12-3001"], False),                # keyed digits: the letter dropped
        ("A12", [], False),                             # too little to pick one
        ("B7-100200", [], False),                       # someone else's order: not matched, not forced
    ],
)
def test_code_matches_exact_near_or_none(heard: str, matches: list[str], exact: bool) -> None:
    assert code_matches(CODES, heard) == (matches, exact)


def test_two_near_matches_are_both_returned_so_the_dialplan_asks() -> None:
    assert code_matches(["A12-3001", "A12-3002"], "A12 3003") == (["A12-3001", "A12-3002"], False)
