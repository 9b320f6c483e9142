"""`demo_today` pins the date the server's built-in demo backend sees, so demo dialogues do not follow the calendar."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.config import load_server_config
from voicebot.dialplan.actions import Webhook
from voicebot.runtime import Runtime
from voicebot.speech.prompts import PromptCache
from voicebot.yamlsrc import ConfigErrors

LOOKUP = Webhook(name="finance.lookup", url=None, method="POST", args={"ani": "+15550100"})


async def _lookup_surge(tmp_path: Path, config_text: str) -> bool:
    config_file = tmp_path / "voicebot.yaml"
    config_file.write_text(config_text)
    runtime = Runtime(load_server_config(config_file), PromptCache(tmp_path / "cache"))
    await runtime.open_webhooks()  # the real demo backend on a loopback port, reached over HTTP
    try:
        result = await runtime.webhook(LOOKUP)
    finally:
        await runtime.close()
    assert result.ok, result.error
    return result.data["surge"]


@pytest.mark.asyncio
@pytest.mark.parametrize(("day", "surge"), [("2026-11-25", True), ("2026-11-10", False), ("2026-12-24", True)])
async def test_demo_today_decides_the_repayment_day_surge(tmp_path: Path, day: str, surge: bool) -> None:
    assert await _lookup_surge(tmp_path, f"demo_backend: true\ndemo_today: {day}\n") is surge


@pytest.mark.parametrize(("value", "message"), [
    ("2026-13-01", r"voicebot.yaml:2:13: cannot read '2026-13-01': month must be in 1..12"),
    ("soon", r"voicebot.yaml:2:1: demo_today: input should be a valid date \(got .soon.\)"),
])
def test_demo_today_must_be_a_date(tmp_path: Path, value: str, message: str) -> None:
    config_file = tmp_path / "voicebot.yaml"
    config_file.write_text(f"demo_backend: true\ndemo_today: {value}\n")
    with pytest.raises(ConfigErrors, match=message):
        load_server_config(config_file)
