"""Helpers for the call-page tests: the page server on a background event loop, headless Chromium with fake media."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable, Coroutine, Iterator

import pytest

from voicebot.web.devserver import CallPageServer, serve_call_page
from voicebot.web.routes import OnCall

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FIXTURES = Path(__file__).resolve().parents[1] / "audio_fixtures"


class PageServerThread:
    """serve_call_page() on 127.0.0.1:<free port>, its event loop in a daemon thread (selenium blocks)."""

    def __init__(self, on_call: OnCall) -> None:
        self.on_call = on_call
        self.loop = asyncio.new_event_loop()
        self.server: CallPageServer | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> str:
        self._thread.start()
        self.server = self.run(serve_call_page("127.0.0.1", 0, self.on_call))
        return self.server.url

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 20) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        if self.server is not None:
            self.run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture
def page_server() -> Iterator[Callable[[OnCall], PageServerThread]]:
    started: list[PageServerThread] = []

    def start(on_call: OnCall) -> PageServerThread:
        thread = PageServerThread(on_call)
        thread.start()
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()


def caller_wav(tmp_path: Path, fixture: str = "en_balance", pad_s: float = 0.0) -> Path:
    """A fixture utterance as 48 kHz mono 16-bit WAV (what Chromium's fake capture device plays, looped)."""
    out = tmp_path / f"{fixture}_48k.wav"
    command = ["sox", str(FIXTURES / f"{fixture}.wav"), "-r", "48000", "-c", "1", "-b", "16", str(out)]
    if pad_s:
        command += ["pad", "0", str(pad_s)]
    subprocess.run(command, check=True, timeout=30)
    return out


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Callable[[Path], Any]]:
    """Start headless Chromium whose microphone plays the given WAV; quit it after the test."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers: list[Any] = []

    def start(wav: Path) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run",
                     "--disable-dev-shm-usage", "--window-size=900,1200", "--autoplay-policy=no-user-gesture-required",
                     "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                     f"--use-file-for-fake-audio-capture={wav}",
                     f"--user-data-dir={tmp_path / f'chromium-profile-{len(drivers)}'}"):  # one per browser
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(20)
        driver.set_script_timeout(20)
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.quit()
