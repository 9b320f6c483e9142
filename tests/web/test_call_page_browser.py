"""The call page in headless Chromium with a fake microphone (en_balance.wav), over WebRTC on loopback.

The browser's audio must reach the server, the server's audio must reach the page (WebAudio AnalyserNode level),
keypad digits must arrive as Dtmf events, and hang-up must work from either side. Screenshots are kept in tmp_path.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from voicebot.channels.base import Dtmf, HungUp
from voicebot.channels.webrtc import WebRtcChannel
from voicebot.calls.keypad_session import CallRecord, DemoDtmfSession, DemoPrompts

from .conftest import caller_wav

AUDIBLE = 0.01  # page-side RMS (full scale 1.0) that only real bot audio reaches; silence measures 0


class ToneVoice:
    """A PromptSource that "speaks" every text as a 440 Hz tone (length grows with the text) and captions it."""

    def __init__(self, channel: WebRtcChannel) -> None:
        self.channel = channel
        self.said: list[str] = []

    def render(self, text: str, voice: str = "en", rate: int = 8000) -> np.ndarray:
        self.said.append(text)
        self.channel.caption("bot", text)
        seconds = max(0.3, min(2.5, 0.04 * len(text)))
        t = np.arange(int(rate * seconds)) / rate
        return (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def rms(frames: list[np.ndarray]) -> float:
    if not frames:
        return 0.0
    audio = np.concatenate(frames).astype(np.float64)
    return float(np.sqrt(np.mean(audio**2)))


def wait_for(driver: Any, script: str, timeout: float, what: str) -> Any:
    """Poll a JS expression until it is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script};")
        if value:
            return value
        time.sleep(0.1)
    state = driver.execute_script("return window.voicebotCall;")
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; page state: {state}")


def click(driver: Any, css: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, css).click()


@pytest.mark.timeout(90)
def test_keypad_demo_over_the_call_page(tmp_path: Path, page_server: Callable, chromium: Callable) -> None:
    calls: list[dict[str, Any]] = []

    async def on_call(channel: WebRtcChannel) -> None:  # type: ignore[override]
        heard: list[np.ndarray] = []
        sent: list[np.ndarray] = []
        voice = ToneVoice(channel)
        record = CallRecord(call_id=channel.call_id, from_="browser", to="keypad-demo")
        calls.append({"channel": channel, "heard": heard, "sent": sent, "voice": voice, "record": record})
        channel.on_audio(heard.append)
        channel.on_sent_audio(sent.append)
        prompts = DemoPrompts(greeting="Welcome to the keypad demo. Please enter some digits, then press hash.",
                              goodbye="Thank you for calling. Goodbye.", digit_timeout_s=20)
        await DemoDtmfSession(channel, prompts, voice, record, rate=16000).run()

    server = page_server(on_call)
    driver = chromium(caller_wav(tmp_path))
    driver.get(server.server.url)
    click(driver, "#call")
    wait_for(driver, "window.voicebotCall.state === 'connected'", 20, "the call to connect")
    wait_for(driver, f"window.voicebotCall.peakLevel > {AUDIBLE}", 20, "the greeting to be heard in the page")
    wait_for(driver, "window.voicebotCall.captions.length > 0", 5, "the greeting's caption")
    call = calls[0]
    deadline = time.monotonic() + 10
    while len(call["heard"]) < 100 and time.monotonic() < deadline:  # two seconds of caller audio
        time.sleep(0.1)
    for digit in "42#":
        click(driver, f"#keypad button[data-digit='{digit}']")
        time.sleep(0.15)
    wait_for(driver, "window.voicebotCall.state === 'ended'", 30, "the bot to read back the digits and hang up")
    driver.save_screenshot(str(tmp_path / "call_page_keypad_demo.png"))

    record, channel = call["record"], call["channel"]
    assert record.digits == "42" and record.outcome == "completed"
    assert [d.digit for d in channel.digits_received] == ["4", "2", "#"]
    assert {d.source for d in channel.digits_received} == {"datachannel"}
    assert call["voice"].said[-4:] == ["You entered", "four", "two", "Thank you for calling. Goodbye."]
    captions = driver.execute_script("return window.voicebotCall.captions.map(c => c.text);")
    assert "You entered" in captions and "Thank you for calling. Goodbye." in captions
    assert driver.execute_script("return window.voicebotCall.hangupReason;") == "bot hangup"
    heard = call["heard"]
    assert all(frame.dtype == np.int16 and frame.shape == (320,) for frame in heard)
    assert rms(heard) > 300, "the fake microphone's speech should reach the server with real energy"
    assert rms(call["sent"]) > 1000, "the bot's tones were sent"
    assert (tmp_path / "call_page_keypad_demo.png").stat().st_size > 5000


@pytest.mark.timeout(90)
def test_caller_hangs_up_while_the_bot_echoes(tmp_path: Path, page_server: Callable, chromium: Callable) -> None:
    ended: list[HungUp] = []
    echoed: list[int] = []

    async def on_call(channel: WebRtcChannel) -> None:  # type: ignore[override]
        def echo(frame: np.ndarray) -> None:
            echoed.append(len(frame))
            channel.play(frame, 16000)

        channel.on_audio(echo)
        channel.caption("caller", "echo test")
        while True:
            event = await channel.next_event(30)
            if isinstance(event, HungUp) or event is None:
                ended.append(event)  # type: ignore[arg-type]
                return
            assert not isinstance(event, Dtmf)

    server = page_server(on_call)
    driver = chromium(caller_wav(tmp_path))
    driver.get(server.server.url)
    click(driver, "#call")
    wait_for(driver, "window.voicebotCall.state === 'connected'", 20, "the call to connect")
    wait_for(driver, f"window.voicebotCall.peakLevel > {AUDIBLE}", 20, "the echoed voice to be heard")
    assert driver.execute_script("return window.voicebotCall.captions;") == [{"who": "caller", "text": "echo test"}]
    deadline = time.monotonic() + 10
    while sum(echoed) < 16000 and time.monotonic() < deadline:  # a second of caller audio went round
        time.sleep(0.05)
    driver.save_screenshot(str(tmp_path / "call_page_echo.png"))
    click(driver, "#hangup")
    deadline = time.monotonic() + 10
    while not ended and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ended and isinstance(ended[0], HungUp) and ended[0].reason == "caller hung up"
    assert sum(echoed) >= 16000
    assert driver.execute_script("return window.voicebotCall.state;") == "ended"
