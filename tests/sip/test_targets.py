"""Transfer allowlist matching on the parsed SIP URI (voicebot.sip.targets) and through TransferConfig."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from voicebot.config import load_server_config
from voicebot.sip.targets import TargetPattern, TargetPatternError, target_allowed


def test_transfer_config_matches_parsed_uris(tmp_path: Path) -> None:
    config_path = tmp_path / "voicebot.yaml"
    config_path.write_text("transfer:\n  allowed_targets: ['sip:*@127.0.0.1:*', 'sip:+1555*@gw.example.com']\n")
    transfer = load_server_config(config_path).transfer
    assert transfer.allows("sip:agent@127.0.0.1:5099")
    assert transfer.allows("<sip:+15550100@gw.example.com>")
    assert transfer.allows("sip:+15550100@gw.example.com:5060")  # the default port is the absent port
    assert not transfer.allows("sip:agent@127.0.0.1:5099;maddr=127.0.0.9")
    assert not transfer.allows("sip:+15550100@gw.example.com:5080")
    assert not transfer.allows("sip:+1555;phone-context=x@gw.example.com")
    assert not transfer.allows("sip:+15550100:secret@gw.example.com")
    assert not transfer.allows("sip:+15550100@gw.example.com?Replaces=abc")
    assert not transfer.allows("+15550100")
    assert not transfer.allows("tel:+15550100")
    start = time.monotonic()
    assert not transfer.allows("sip:" + "a" * 60000 + "@127.0.0.1")
    assert time.monotonic() - start < 0.5


@pytest.mark.parametrize(("pattern", "target", "allowed"), [
    ("sip:*@10.0.0.*", "sip:a@10.0.0.7", True),
    ("sip:*@10.0.0.*", "sip:a@10.0.0.7.evil.example", False),  # * stays within one host label
    ("sip:*@*.example.com", "sip:a@x.example.com", True),
    ("sip:*@*.example.com", "sip:a@x.evil.com.example.com", False),
    ("sip:*@gw.example.com;transport=udp", "sip:a@gw.example.com;transport=udp", True),
    ("sip:*@gw.example.com;transport=udp", "sip:a@gw.example.com;transport=tcp", False),
    ("sip:*@gw.example.com;transport=udp", "sip:a@gw.example.com;transport=udp;maddr=1.2.3.4", False),
    ("sip:*@[::1]:*", "sip:a@[::1]:5070", True),
    ("sip:*@[::1]:*", "sip:a@[::2]:5070", False),
    ("sip:agent@host", "sip:Agent@host", False),
    ("sips:*@host", "sip:a@host", False),
    ("sip:*@HOST.example.com", "sip:a@host.EXAMPLE.com", True),
])
def test_pattern_matching(pattern: str, target: str, allowed: bool) -> None:
    assert target_allowed(target, [pattern]) is allowed


@pytest.mark.parametrize("bad", ["*", "sip:", "sip:a@", "http:x@host", "sip:a@host:99999", "sip:a@host:x"])
def test_bad_patterns_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(TargetPatternError, match="SIP URI|port"):
        TargetPattern.parse(bad)
