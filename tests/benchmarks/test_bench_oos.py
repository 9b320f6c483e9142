"""bench/oos.py's routing and calibration: the interpreter's menu rules (local threshold, global min_confidence,
agent is a hand-over), and a calibrated threshold that never costs more in-scope answers than allowed."""

from __future__ import annotations

from pathlib import Path

import yaml

from bench.oos import DATA, Reading, calibrate, rates, route
from voicebot.dialplan.loader import load_dialplan

FINANCE = load_dialplan(Path(__file__).resolve().parents[2] / "dialplans" / "finance.yaml")


def reading(intent: str | None, confidence: float, expected: str | None = None) -> Reading:
    return Reading("en", "text", intent, confidence, expected)


def test_menu_routing_follows_the_interpreter() -> None:
    assert route(FINANCE, "main_menu", reading("check_balance", 0.5), 0.0) == "check_balance"
    assert route(FINANCE, "main_menu", reading("check_balance", 0.5), 0.6) is None  # below the listen threshold
    assert route(FINANCE, "main_menu", reading("agent", 0.65), 0.0) is None  # global intents need 0.7
    assert route(FINANCE, "main_menu", reading("agent", 0.9), 0.0) == "agent"
    assert route(FINANCE, "main_menu", reading("book_appointment", 0.99), 0.0) is None  # not this menu's intent


def test_rates_count_agent_as_a_hand_over_and_calibration_keeps_in_scope() -> None:
    readings = [reading("product_info", 0.6), reading("agent", 0.9), reading(None, 0.0),
                reading("check_balance", 0.97, "check_balance"), reading("lost_card", 0.8, "lost_card")]
    assert rates(FINANCE, "main_menu", readings, 0.0) == (1 / 3, 1.0)
    chosen = calibrate(FINANCE, "main_menu", readings, 0.0)
    assert 0.6 < chosen <= 0.8  # drops the 0.6 misroute, keeps the 0.8 in-scope answer
    assert rates(FINANCE, "main_menu", readings, chosen) == (0.0, 1.0)


def test_the_held_out_set_names_each_menu_and_its_intents() -> None:
    data = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    root = Path(__file__).resolve().parents[2]
    for industry, section in data.items():
        plan = load_dialplan(root / "dialplans" / f"{industry}.yaml")
        listen = plan.nodes[section["menu"]].listen
        assert listen is not None
        for lang in ("en", "zh"):
            assert len(section[lang]["out_of_scope"]) >= 10
            assert {item["intent"] for item in section[lang]["in_scope"]} <= set(listen.intents), industry


def test_garbling_mishears_each_request_alike_every_run() -> None:
    from bench.oos import configured, garble

    assert garble("I lost my credit card", "en") == garble("I lost my credit card", "en")
    assert garble("I lost my credit card", "en") != "I lost my credit card"
    assert garble("我想查一下余额", "zh") != "我想查一下余额" and len(garble("我想查一下余额", "zh")) == 7  # a swap
    assert garble("what time is it", "en").count(" ") == 2  # nothing to swap: one word dropped
    assert configured(FINANCE, "main_menu", 0.0) == FINANCE.out_of_scope.min_confidence  # type: ignore[union-attr]
    assert configured(FINANCE, "elderly_menu", 0.0) == 0.0  # the path does not serve it
