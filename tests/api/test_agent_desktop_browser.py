"""The agent desktop page in headless Chromium (Debian chromium + chromedriver, driven by selenium).

The page signs in with an agent token, goes available, receives a screen-pop over the WebSocket when the
ACD assigns a call, and shows the caller's context. A screenshot is kept in the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path

import pytest
from aiohttp import web

from voicebot.api.app import create_app
from voicebot.api.tokens import TokenStore
from voicebot.queues.context import CallContextRecord
from voicebot.queues.models import AgentsConfig, QueuesConfig
from voicebot.queues.service import AcdService
from voicebot.queues.store import MemoryStore

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


class ServerThread:
    """The API on 127.0.0.1:<free port>, served by an event loop in a background thread."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(self.app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10), "API server did not start"

    def call(self, coroutine):  # run a coroutine on the server's loop and wait for it
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def stop(self) -> None:
        self.call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.mark.timeout(90)
def test_agent_desktop_gets_screen_pop_with_context(tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    agents = AgentsConfig.model_validate({"agents": [
        {"id": "a1", "name": "Alice Chen", "browser": True, "skills": {"cards": 5}, "languages": ["en-US"]}]})
    queues = QueuesConfig.model_validate({"queues": [{"name": "cards", "skills": ["cards"]}]})
    service = AcdService(MemoryStore(), agents, queues, node="n1")
    tokens = TokenStore.load(tmp_path / "tokens.json")
    agent_token = tokens.create("agent", agent="a1")
    server = ServerThread(create_app(service, tokens))
    server.start()

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1100,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log")),
                              options=options)
    try:
        wait = WebDriverWait(driver, 20)
        driver.get(f"http://127.0.0.1:{server.port}/agent")
        driver.find_element(By.ID, "token").send_keys(agent_token)
        driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
        wait.until(until.text_to_be_present_in_element((By.ID, "agent-name"), "Alice Chen (a1)"))
        driver.find_element(By.ID, "go-available").click()
        wait.until(until.text_to_be_present_in_element((By.ID, "state"), "available"))
        assert server.call(service.snapshot()).agents["a1"].state == "available"

        record = CallContextRecord.new("call-42", "+15551234567", "en-US", 0.0)
        record.add_turn("bot", "How can I help?")
        record.add_turn("caller", "I lost my card, number 4111 1111 1111 1111")
        record.intents.append("lost_card")
        record.set_slots({"id_last4": "1234", "card_type": "visa"}, sensitive=["id_last4"])
        record.verified = True
        record.entered_queue("cards", 0.0)
        server.call(service.put_context(record))
        server.call(service.enqueue("call-42", "cards", ["lang:en-US"], context_id=record.context_id))

        wait.until(until.visibility_of_element_located((By.ID, "call")))
        wait.until(until.text_to_be_present_in_element((By.ID, "ctx-intents"), "lost_card"))
        transcript = driver.find_element(By.ID, "transcript").text
        assert "I lost my card" in transcript and "4111" not in transcript and "1111" in transcript
        assert driver.find_element(By.ID, "ctx-caller").text.endswith("4567")
        assert driver.find_element(By.ID, "ctx-verified").text == "yes"
        assert "id_last4: ****" in driver.find_element(By.ID, "ctx-slots").text
        assert driver.find_element(By.ID, "state").text == "reserved"
        driver.save_screenshot(str(tmp_path / "agent_desktop_screen_pop.png"))

        driver.find_element(By.ID, "accept").click()
        wait.until(until.text_to_be_present_in_element((By.ID, "state"), "busy"))
        assert server.call(service.snapshot()).agents["a1"].state == "busy"
        assert (tmp_path / "agent_desktop_screen_pop.png").stat().st_size > 10_000
    finally:
        driver.quit()
        server.stop()
