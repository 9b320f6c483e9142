"""The analytics page in headless Chromium: its charts show the figures computed from the call records.

Calls are written to a record store; the page signs in with a supervisor token and draws the outcome, hot-spot and
intent charts, the ASR confidence and turn latency histograms, the announced-wait honesty and the ASA /
service-level charts, then again filtered to one queue per hour; the numbers on the bars must equal those counted
from the events the test wrote. A screenshot is kept in tmp.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.test_agent_desktop_browser import CHROMEDRIVER, CHROMIUM, ServerThread
from voicebot.api.analytics import add_analytics_routes
from voicebot.api.app import create_app
from voicebot.api.tokens import TokenStore
from voicebot.queues.models import AgentsConfig, QueuesConfig
from voicebot.queues.service import AcdService
from voicebot.queues.store import MemoryStore
from voicebot.records.store import SqliteRecordStore


DAY = 1_796_601_600.0  # 2026-12-07T00:00Z
# (outcome, how it ended, caller turns: (intent, ASR confidence, reply ms), queue: (name, joined after s, the wait
# announced: (after joining s, low s, high s) or None, answered after joining s or None for a hang-up))
PLAN = [
    ("completed", None, [("check_balance", 0.93, 450), ("check_balance", 0.88, 1200)], None),
    ("completed", None, [("check_balance", 0.71, 650)], None),
    ("agent", "queue", [("lost_card", 0.55, 800)], ("cards", 20, (2, 0, 60), 12)),
    ("", "hangup", [("check_balance", 0.91, 300), (None, 0.32, 2500)], None),
    ("agent", "queue", [("agent", 0.97, 90)], ("cards", 30, (5, 60, 180), 30)),
    ("", "queue", [("agent", 0.64, 700)], ("banking", 3600, (2, 0, 60), None)),
    ("agent", "queue", [("lost_card", 0.82, 3100)], ("banking", 3700, (3, 60, 120), 150)),
]


def _write_calls(path: Path) -> None:
    store = SqliteRecordStore(path)
    for index, (outcome, fate, turns, queue) in enumerate(PLAN):
        call_id = f"c{index}"
        started = DAY + index
        store.start_call(call_id, dialplan="finance", started_at=started)
        store.append(call_id, "node", {"node": "main_menu"}, t=started + 1)
        store.append(call_id, "nomatch", {"node": "main_menu"}, t=started + 2)
        for intent, confidence, reply_ms in turns:
            store.append(call_id, "caller", {"text": "words", "intent": intent, "node": "main_menu",
                                             "asr_confidence": confidence}, t=started + 3)
            store.append(call_id, "turn", {"reply_ms": reply_ms}, t=started + 4)
        end = started + 5
        if queue is not None:
            name, joined_after, told, answered_after = queue
            joined = started + joined_after
            store.append(call_id, "queue_joined", {"queue": name}, t=joined)
            store.append(call_id, "ewt_announced", {"low_s": told[1], "high_s": told[2]}, t=joined + told[0])
            if answered_after is not None:
                store.append(call_id, "agent_answered", {"agent": "a1"}, t=joined + answered_after)
                end = joined + answered_after + 60
            else:
                store.append(call_id, "caller_hangup", {"node": "main_menu"}, t=joined + 100)
                end = joined + 100
        if fate == "hangup":
            store.append(call_id, "caller_hangup", {"node": "main_menu"}, t=end)
        store.end_call(call_id, outcome=outcome, ended_at=end)
    store.close()


def _expected(plan: list, queue: str | None = None) -> dict:
    """The figures the page must draw, counted from the plan itself (not by the code under test)."""
    calls = [c for c in plan if queue is None or (c[3] is not None and c[3][0] == queue)]
    bounds = [100, 200, 300, 400, 500, 700, 1000, 1500, 2000, 3000, 5000]
    confidence: dict[str, int] = {}
    latency: dict[str, int] = {}
    intents: dict[str, int] = {}
    ewt: dict[str, int] = {}
    service: dict[str, list] = {}
    for _outcome, _fate, turns, waited in calls:
        for intent, conf, ms in turns:
            key = f"en-US 0.{int(round(conf * 100)) // 10}"
            confidence[key] = confidence.get(key, 0) + 1
            key = "en-US " + next((str(b) for b in bounds if ms <= b), "+Inf")
            latency[key] = latency.get(key, 0) + 1
            if intent:
                intents[intent] = intents.get(intent, 0) + 1
        if waited is not None:
            name, _joined, (told_after, low, high), answered = waited
            if answered is None:
                verdict = "left"
            else:
                wait = answered - told_after
                verdict = "early" if wait < low else "late" if wait > high else "within"
            ewt[f"{name}: {verdict}"] = ewt.get(f"{name}: {verdict}", 0) + 1
            service.setdefault(name, []).append(answered)
    return {"calls": len(calls), "confidence": confidence, "latency": latency, "intents": intents, "ewt": ewt,
            "service": service}


def _chart(driver, chart: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    return {bar.get_attribute("data-label"): float(bar.get_attribute("data-value"))
            for bar in driver.find_elements(By.CSS_SELECTOR, f"#{chart} rect")}


@pytest.mark.timeout(90)
def test_analytics_page_charts_match_the_records(tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import Select, WebDriverWait

    _write_calls(tmp_path / "calls.sqlite3")
    agents = AgentsConfig.model_validate({"agents": [
        {"id": "a1", "name": "Alice", "browser": True, "skills": {"cards": 5}, "languages": ["en-US"]}]})
    queues = QueuesConfig.model_validate({"queues": [{"name": "cards", "skills": ["cards"]}]})
    tokens = TokenStore.load(tmp_path / "tokens.json")
    supervisor = tokens.create("supervisor")
    app = create_app(AcdService(MemoryStore(), agents, queues, node="n1"), tokens)
    add_analytics_routes(app, tmp_path / "calls.sqlite3")
    server = ServerThread(app)
    server.start()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,2000",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(f"http://127.0.0.1:{server.port}/analytics/view")
        driver.find_element(By.ID, "token").send_keys(supervisor)
        driver.find_element(By.ID, "dialplan").send_keys("finance")
        driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
        WebDriverWait(driver, 20).until(until.visibility_of_element_located((By.ID, "board")))
        truth = _expected(PLAN)
        assert driver.find_element(By.ID, "k-calls").text == str(truth["calls"]) == "7"
        assert driver.find_element(By.ID, "k-contained").text == "28.6%"  # 2 of 7
        assert driver.find_element(By.ID, "k-transferred").text == "42.9%"  # 3 of 7
        assert driver.find_element(By.ID, "k-abandoned").text == "28.6%"  # one in the bot, one in a queue
        assert _chart(driver, "outcomes") == {"contained": 2, "transferred": 3, "abandoned in bot": 1,
                                              "abandoned in queue": 1}
        assert _chart(driver, "intents") == truth["intents"]
        assert list(_chart(driver, "hot-spots").values()) == [7]
        drawn = _chart(driver, "confidence")
        assert {k: v for k, v in drawn.items() if v} == truth["confidence"] and len(drawn) == 10
        drawn = _chart(driver, "latency")
        assert {k: v for k, v in drawn.items() if v} == truth["latency"] and len(drawn) == 12
        assert {k: v for k, v in _chart(driver, "ewt").items() if v} == truth["ewt"]
        # ASA from joining to an agent: cards 12 and 30 s, banking 150 s; service level: answered within 20 s
        waits = {q: [a for a in answers if a is not None] for q, answers in truth["service"].items()}
        day = "2026-12-07T00:00Z"
        assert _chart(driver, "asa") == {f"{q} {day}": round(sum(w) / len(w), 2) for q, w in waits.items()}
        assert _chart(driver, "service-level") == {
            f"{q} {day}": round(100 * sum(a is not None and a <= 20 for a in answers) / len(answers), 1)
            for q, answers in truth["service"].items()}
        all_waits = [w for q in waits.values() for w in q]
        assert driver.find_element(By.ID, "k-asa").text == f"{round(sum(all_waits) / len(all_waits), 1):g} s"
        assert driver.find_element(By.ID, "k-sl").text == "25%"  # 1 of the 4 queued calls within 20 s
        driver.save_screenshot(str(tmp_path / "analytics.png"))

        # Per hour, service level within 30 s, and only the banking queue: every chart follows the filter.
        Select(driver.find_element(By.ID, "bucket")).select_by_visible_text("hour")
        driver.find_element(By.ID, "sl").clear()
        driver.find_element(By.ID, "sl").send_keys("30")
        driver.find_element(By.ID, "queue").send_keys("banking")
        driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
        banking = _expected(PLAN, "banking")
        WebDriverWait(driver, 20).until(
            lambda d: d.find_element(By.ID, "k-calls").text == str(banking["calls"]))
        assert _chart(driver, "intents") == banking["intents"]
        assert {k: v for k, v in _chart(driver, "confidence").items() if v} == banking["confidence"]
        assert {k: v for k, v in _chart(driver, "latency").items() if v} == banking["latency"]
        assert {k: v for k, v in _chart(driver, "ewt").items() if v} == banking["ewt"]
        assert _chart(driver, "asa") == {"banking 2026-12-07T01:00Z": 150.0}
        assert _chart(driver, "service-level") == {"banking 2026-12-07T01:00Z": 0.0}
        assert driver.find_element(By.ID, "sl-s").text == "30"
        driver.save_screenshot(str(tmp_path / "analytics-banking.png"))
    finally:
        driver.quit()
        server.stop()
