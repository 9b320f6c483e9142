"""Personal data on real calls against a running `voicebot serve` with its default (masked) configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.support import start_server, stop_server
from tests.integration.test_bad_input import Caller

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CARD_WRONG_CHECK_DIGIT = "4111111111111112"  # fails Luhn: the checksum rule alone logged it raw


def test_keyed_card_with_wrong_check_digit_never_reaches_the_log(tmp_path: Path) -> None:
    """15.4: the keypad menu logged collected digits raw; keyed digits are masked by default."""
    server = start_server(tmp_path)
    caller = Caller(server)
    try:
        assert caller.invite() == 200
        caller.rtp.settimeout(10)
        caller.rtp.recvfrom(2048)  # the greeting streams: the keypad session is collecting digits
        for key in CARD_WRONG_CHECK_DIGIT:  # 16 digits = prompts.max_digits: collection ends there
            caller.peer.send(caller.peer.request("INFO", server.uri, to_tag=caller.to_tag,
                                                 content_type="application/dtmf-relay",
                                                 body=f"Signal={key}\r\nDuration=160\r\n"))
            reply = caller.peer.wait_reply("INFO", timeout=5)
            assert reply is not None and reply.status == 200
        ended = server.wait_for("call ended", timeout=60)[0]
    finally:
        caller.close()
        stop_server(server)
    assert ended["digits"] == "[DIGITS 16]"
    assert ended["rtp_sent"] > 0
    leaked = [line for line in server.lines if "1111111" in line or "1111 1111" in line]
    assert leaked == [], leaked[:3]
