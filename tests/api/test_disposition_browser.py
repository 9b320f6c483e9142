"""The agent desktop's disposition picker in headless Chromium (issue 19): after a screen-pop the page lists the
codes of the call's industry (finance), the agent picks one and saves it, and it lands in the call's record."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.test_agent_desktop_browser import CHROMEDRIVER, CHROMIUM, ServerThread
from voicebot.api.app import HUB_KEY, create_app
from voicebot.api.cases import CaseDesk, add_case_routes
from voicebot.api.tokens import TokenStore
from voicebot.queues.context import CallContextRecord
from voicebot.queues.models import AgentsConfig, QueuesConfig
from voicebot.queues.service import AcdService
from voicebot.queues.store import MemoryStore
from voicebot.records.cases import CaseStore
from voicebot.records.dispositions import load_dispositions
from voicebot.records.journal import CallJournal
from voicebot.records.store import SqliteRecordStore

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(90)
def test_the_agent_picks_a_disposition_for_the_call_on_the_desktop(tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import Select, WebDriverWait

    agents = AgentsConfig.model_validate({"agents": [
        {"id": "a1", "name": "Alice Chen", "sip_uri": "sip:alice@127.0.0.1:5090", "skills": {"cards": 5},
         "languages": ["en-US"]}]})
    queues = QueuesConfig.model_validate({"queues": [{"name": "cards", "skills": ["cards"]}]})
    service = AcdService(MemoryStore(), agents, queues, node="n1")
    tokens = TokenStore.load(tmp_path / "tokens.json")
    agent_token = tokens.create("agent", agent="a1")
    records = SqliteRecordStore(tmp_path / "calls.sqlite3")
    records.start_call("call-42", caller="+15551234567", dialplan="finance")
    records.append("call-42", "agent_answered", {"agent": "a1"})
    journal = CallJournal(records)
    desk = CaseDesk(CaseStore(tmp_path / "calls.sqlite3"), load_dispositions(REPO / "sip_config/dispositions.yaml"),
                    service, record_event=journal.append, flush=journal.flush)
    app = create_app(service, tokens)
    add_case_routes(app, desk)
    app[HUB_KEY].on_disposition = desk.set_disposition
    server = ServerThread(app)
    server.start()

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1100,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER,
                                              log_output=str(tmp_path / "chromedriver.log")), options=options)
    try:
        wait = WebDriverWait(driver, 20)
        driver.get(f"http://127.0.0.1:{server.port}/agent")
        driver.find_element(By.ID, "token").send_keys(agent_token)
        driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
        wait.until(until.text_to_be_present_in_element((By.ID, "agent-name"), "Alice Chen (a1)"))
        driver.find_element(By.ID, "go-available").click()
        wait.until(until.text_to_be_present_in_element((By.ID, "state"), "available"))
        record = CallContextRecord.new("call-42", "+15551234567", "en-US", 0.0)
        record.entered_queue("cards", 0.0)
        server.call(service.put_context(record))
        server.call(service.enqueue("call-42", "cards", ["lang:en-US"], context_id=record.context_id))
        wait.until(until.visibility_of_element_located((By.ID, "call")))
        wait.until(lambda d: len(Select(d.find_element(By.ID, "disposition")).options) > 4)
        picker = Select(driver.find_element(By.ID, "disposition"))
        labels = [option.text for option in picker.options]
        assert "Card blocked" in labels and "Rebooked" not in labels, labels  # finance's codes, not airline's
        picker.select_by_value("card_blocked")
        driver.find_element(By.ID, "save-disposition").click()
        wait.until(until.text_to_be_present_in_element((By.ID, "disposition-status"), "saved"))
        assert journal.flush()
        assert [e.data for e in records.events("call-42") if e.kind == "disposition"] == [
            {"code": "card_blocked", "agent": "a1"}]
    finally:
        driver.quit()
        server.stop()
        journal.close()
