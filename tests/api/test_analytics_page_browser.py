"""The analytics page in headless Chromium: its charts show the figures computed from the call records.

Calls are written to a record store; the page signs in with a supervisor token and draws the outcome, hot-spot and
intent charts; the numbers on the bars must equal the API's (and the events'). A screenshot is kept in tmp.
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


def _write_calls(path: Path) -> None:
    store = SqliteRecordStore(path)
    plan = [("completed", None, ["check_balance"]), ("completed", None, ["check_balance"]),
            ("agent", "a1", ["lost_card"]), ("", "hangup", ["check_balance", None])]
    for index, (outcome, fate, intents) in enumerate(plan):
        call_id = f"c{index}"
        store.start_call(call_id, dialplan="finance", started_at=1_796_601_600.0 + index)
        store.append(call_id, "node", {"node": "main_menu"})
        store.append(call_id, "nomatch", {"node": "main_menu"})
        for intent in intents:
            store.append(call_id, "caller", {"text": "words", "intent": intent, "node": "main_menu"})
        if fate == "a1":
            store.append(call_id, "queue_joined", {"queue": "banking"})
            store.append(call_id, "agent_answered", {"agent": "a1"})
        if fate == "hangup":
            store.append(call_id, "caller_hangup", {"node": "main_menu"})
        store.end_call(call_id, outcome=outcome)
    store.close()


@pytest.mark.timeout(90)
def test_analytics_page_charts_match_the_records(tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

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
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,900",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(f"http://127.0.0.1:{server.port}/analytics/view")
        driver.find_element(By.ID, "token").send_keys(supervisor)
        driver.find_element(By.ID, "dialplan").send_keys("finance")
        driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
        WebDriverWait(driver, 20).until(until.visibility_of_element_located((By.ID, "board")))
        assert driver.find_element(By.ID, "k-calls").text == "4"
        assert driver.find_element(By.ID, "k-contained").text == "50%"
        assert driver.find_element(By.ID, "k-transferred").text == "25%"
        assert driver.find_element(By.ID, "k-abandoned").text == "25%"
        bars = {bar.get_attribute("data-label"): int(bar.get_attribute("data-value"))
                for bar in driver.find_elements(By.CSS_SELECTOR, "#outcomes rect")}
        assert bars == {"contained": 2, "transferred": 1, "abandoned in bot": 1}
        intents = {bar.get_attribute("data-label"): int(bar.get_attribute("data-value"))
                   for bar in driver.find_elements(By.CSS_SELECTOR, "#intents rect")}
        assert intents == {"check_balance": 3, "lost_card": 1}
        spots = [bar.get_attribute("data-value") for bar in driver.find_elements(By.CSS_SELECTOR, "#hot-spots rect")]
        assert spots == ["4"]
        driver.save_screenshot(str(tmp_path / "analytics.png"))
    finally:
        driver.quit()
        server.stop()
