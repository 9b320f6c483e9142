"""Personal data on real calls against a running `voicebot serve` with its default (masked) configuration."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.integration.rawsip import sdp_offer
from tests.integration.support import free_udp_port, start_server, stop_server
from tests.integration.test_bad_input import Caller
from voicebot.api.tokens import TokenStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

def api_get(port: int, path: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


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


RFC3261_CALL_ID = "a84b4c76e66710@pc33.atlanta.com"  # RFC 3261 §24.2's own example: looks like an e-mail


def test_email_shaped_call_id_stays_correlatable_in_logs_records_and_audit(tmp_path: Path) -> None:
    """15.8: identifiers (Call-ID, tags, our recording paths) are not PII text; the free text still is."""
    tokens = TokenStore.load(tmp_path / "tokens.json")
    supervisor = tokens.create("supervisor", label="floor manager")
    tokens.save()
    server = start_server(tmp_path)
    caller = Caller(server)
    caller.peer.call_id = RFC3261_CALL_ID
    try:
        assert caller.invite() == 200
        caller.rtp.settimeout(10)
        for _ in range(25):  # half a second of the greeting: the call is being recorded
            caller.rtp.recvfrom(2048)
        assert caller.bye() == 200
        ended = server.wait_for("call ended")[0]
        api_port = server.wait_for("api listening")[0]["port"]
        status, _ = api_get(api_port, f"/calls/{RFC3261_CALL_ID}/recording", supervisor)
    finally:
        caller.close()
        stop_server(server)
    assert server.wait_for("call offered")[0]["call_id"] == RFC3261_CALL_ID
    assert ended["call_id"] == RFC3261_CALL_ID
    assert status == 200  # the recording is found under the Call-ID as received
    entries = [json.loads(line) for line in (tmp_path / "audit" / "audit.jsonl").read_text().splitlines()]
    reads = [e for e in entries if e["action"] == "recording_read"]
    assert len(reads) == 1 and reads[0]["target"] == RFC3261_CALL_ID, reads


CALLER_NUMBER = "+14155550123"


def test_queued_caller_without_callback_leaves_no_raw_number_in_redis(tmp_path: Path) -> None:
    """15.20: screen-pop contexts kept the raw caller number 24 h for callers who never asked for a callback; now it
    lives only in the recovery alias while the caller waits, and goes when they leave."""
    import redis

    namespace = f"secpath-{uuid.uuid4().hex[:8]}"
    client = redis.Redis(host="127.0.0.1", port=6379, decode_responses=True)
    (tmp_path / "agents.yaml").write_text(f"agents:\n  - id: a1\n    name: A\n    sip_uri: sip:a1@127.0.0.1:"
                                          f"{free_udp_port()}\n    skills: {{billing: 5}}\n    languages: [en-US]\n")
    (tmp_path / "queues.yaml").write_text("queues:\n  - name: support\n    max_wait_s: 600\n")
    server = start_server(tmp_path, f"""speech: {{workers: 1, asr_model: tiny.en}}
queues: {{agents_file: {tmp_path / 'agents.yaml'}, queues_file: {tmp_path / 'queues.yaml'}, store: redis,
          redis_url: "redis://127.0.0.1:6379/0", namespace: {namespace}, node_id: node-pii}}
""", dialplan="demo")
    caller = Caller(server)
    peer = caller.peer
    try:
        server.wait_for("queues ready", timeout=120)
        invite = peer.request("INVITE", server.uri, body=sdp_offer(peer.host, caller.rtp.getsockname()[1]),
                              content_type="application/sdp", cseq=1)
        peer.send(invite.replace("From: <sip:raw@", f"From: <sip:{CALLER_NUMBER}@"))
        reply = peer.wait_reply("INVITE", timeout=30)
        assert reply is not None and reply.status == 200, reply
        caller.to_tag = (reply.header("to") or "").split("tag=")[1].split(";")[0]
        caller.ack(1)
        caller.rtp.settimeout(20)
        caller.rtp.recvfrom(2048)  # the greeting plays: press 0 for an agent
        peer.send(peer.request("INFO", server.uri, to_tag=caller.to_tag, content_type="application/dtmf-relay",
                               body="Signal=0\r\nDuration=160\r\n"))
        queued = server.wait_for("caller queued", timeout=60)[0]

        def dump() -> tuple[dict[str, str | None], str]:
            stored = {key: client.get(key) for key in client.scan_iter(f"voicebot:{namespace}:context:*")}
            everything = json.dumps({key: client.hgetall(key) if client.type(key) == "hash" else client.get(key)
                                     for key in client.scan_iter(f"voicebot:{namespace}:*")
                                     if client.type(key) in ("hash", "string")})
            return stored, everything

        stored, waiting = dump()
        caller.bye()
        server.wait_for("call ended", timeout=30)
        _, after = dump()
    finally:
        caller.close()
        stop_server(server)
        for key in client.scan_iter(f"voicebot:{namespace}:*"):
            client.delete(key)
    assert stored, "no context was stored in Redis"
    contexts = {key: json.loads(value) for key, value in stored.items() if value}
    alias_key = next(k for k in contexts if k.endswith(f"call:{queued['call_id']}"))
    record = contexts[next(k for k in contexts if k.endswith(queued["context_id"]))]
    assert record["caller"].endswith("0123") and "4155550" not in record["caller"]  # what the agent needs
    # While the caller waits, the raw number is only in the recovery alias (a lost node's callers are called
    # back by another node), never in the agent-readable record or the queue entries...
    assert contexts[alias_key].get("callback_number") == CALLER_NUMBER
    assert "4155550123" not in waiting.replace(json.dumps(stored[alias_key])[1:-1], ""), waiting[:2000]
    # ...and once the caller has left, it is nowhere: not for 24 h, not at all.
    assert "4155550123" not in after, after[:2000]
