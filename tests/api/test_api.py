"""The HTTP API: authentication, roles, agent isolation, rate limiting, CORS, endpoints and the agent WebSocket."""

from __future__ import annotations

import json
import stat

import pytest

from tests.api.conftest import bearer
from voicebot.api.cli import main as token_main
from voicebot.api.tokens import TokenStore
from voicebot.queues.context import CallContextRecord

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]


async def test_health_is_open_but_data_needs_a_token(client, tokens):
    _, secrets = tokens
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    for path in ("/queues", "/metrics", "/queues/cards/ewt", "/agents/a1/state", "/calls/x/context", "/agents"):
        response = await client.get(path)
        assert response.status == 401, path
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert (await client.get("/queues", headers=bearer(secrets["a1"] + "x"))).status == 401
    assert (await client.get("/queues", headers={"Authorization": "Basic " + secrets["a1"]})).status == 401
    assert (await client.get("/queues", headers=bearer(secrets["a1"]))).status == 200


async def test_roles_are_enforced(client, tokens):
    _, secrets = tokens
    assert (await client.get("/metrics", headers=bearer(secrets["a1"]))).status == 403
    assert (await client.get("/agents", headers=bearer(secrets["a1"]))).status == 403
    assert (await client.get("/metrics", headers=bearer(secrets["supervisor"]))).status == 200
    assert (await client.get("/agents", headers=bearer(secrets["admin"]))).status == 200


async def test_agents_see_and_change_only_their_own_state(client, tokens, service):
    _, secrets = tokens
    assert (await client.get("/agents/a2/state", headers=bearer(secrets["a1"]))).status == 403
    assert (await client.post("/agents/a2/state", json={"state": "available"}, headers=bearer(secrets["a1"]))).status == 403
    response = await client.post("/agents/a1/state", json={"state": "available"}, headers=bearer(secrets["a1"]))
    assert response.status == 200 and (await response.json())["state"] == "available"
    assert (await service.snapshot()).agents["a1"].state == "available"
    assert (await client.post("/agents/a1/state", json={"state": "busy"}, headers=bearer(secrets["a1"]))).status == 400
    assert (await client.post("/agents/a1/state", data="nope", headers=bearer(secrets["a1"]))).status == 400
    supervisor = await client.get("/agents/a2/state", headers=bearer(secrets["supervisor"]))
    assert (await supervisor.json())["state"] == "offline"
    assert (await client.get("/agents/zz/state", headers=bearer(secrets["admin"]))).status == 404


async def test_call_context_only_for_the_assigned_agent(client, tokens, service, clock):
    _, secrets = tokens
    record = CallContextRecord.new("call-7", "+15551234567", "en-US", clock.now)
    record.add_turn("caller", "my card 4111 1111 1111 1111 is lost")
    record.intents.append("lost_card")
    await service.put_context(record)
    await service.enqueue("call-7", "cards", context_id=record.context_id)
    await service.set_agent_state("a1", "available")
    assert (await client.get("/calls/call-7/context", headers=bearer(secrets["a2"]))).status == 403
    response = await client.get("/calls/call-7/context", headers=bearer(secrets["a1"]))
    assert response.status == 200
    body = await response.json()
    assert body["intents"] == ["lost_card"] and "4111" not in json.dumps(body) and body["caller"].endswith("4567")
    assert (await client.get("/calls/nope/context", headers=bearer(secrets["supervisor"]))).status == 404


async def test_failed_guesses_are_limited_per_token_id_and_never_block_a_valid_token(client, tokens, clock):
    _, secrets = tokens
    a1_id = secrets["a1"].split("_")[1]
    for _ in range(5):
        assert (await client.post("/login", json={"token": f"vbt_{a1_id}_wrong-secret"})).status == 401
    blocked = await client.post("/login", json={"token": f"vbt_{a1_id}_another-guess"})
    assert blocked.status == 429 and int(blocked.headers["Retry-After"]) > 0
    response = await client.post("/login", json={"token": secrets["a1"]})  # same address, same id: still fine
    assert response.status == 200 and await response.json() == {"role": "agent", "agent": "a1"}
    assert (await client.get("/queues", headers=bearer(secrets["a1"]))).status == 200
    assert (await client.post("/login", json={"token": "vbt_otherid_guess"})).status == 401  # other ids unaffected
    clock.now += 61
    assert (await client.post("/login", json={"token": f"vbt_{a1_id}_after-a-minute"})).status == 401


async def test_cors_only_for_listed_origins(client, tokens):
    _, secrets = tokens
    allowed = await client.get("/queues", headers={**bearer(secrets["a1"]), "Origin": "https://desk.example.com"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://desk.example.com"
    other = await client.get("/queues", headers={**bearer(secrets["a1"]), "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = await client.options("/queues", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert preflight.status == 403
    with pytest.raises(ValueError, match="not allowed"):
        from voicebot.api.security import CorsPolicy
        CorsPolicy(["*"])


async def test_queues_ewt_and_metrics(client, tokens, service, clock):
    _, secrets = tokens
    ewt = await (await client.get("/queues/cards/ewt", headers=bearer(secrets["a1"]))).json()
    assert ewt["ewt"] is None and "cannot estimate" in ewt["announcement"]
    assert (await client.get("/queues/nope/ewt", headers=bearer(secrets["a1"]))).status == 404
    assert (await client.get("/queues/cards/ewt?position=0", headers=bearer(secrets["a1"]))).status == 400
    await service.set_agent_state("a1", "available")
    for index in range(3):  # three handled calls of 120 s each (incl. 5 s wrap-up)
        await service.enqueue(f"h{index}", "cards")
        (offer,) = (await service.snapshot()).assignments.values()
        clock.now += 10
        await service.agent_answered(offer.id)
        clock.now += 115
        await service.call_ended(offer.call_id)
        clock.now += 5
        await service.step()
    await service.enqueue("w1", "cards")  # a1 takes it
    clock.now += 30
    await service.enqueue("w2", "cards")
    await service.enqueue("w3", "cards")
    ewt = await (await client.get("/queues/cards/ewt?lang=zh-CN", headers=bearer(secrets["a1"]))).json()
    assert ewt["ewt"]["high_s"] > ewt["ewt"]["low_s"] > 0 and ewt["announcement"].startswith("大约")
    queues = (await (await client.get("/queues", headers=bearer(secrets["a1"]))).json())["queues"]
    assert queues[0]["waiting"] == 2 and queues[0]["longest_wait_s"] == 0 and queues[0]["aht_s"] == 120
    text = await (await client.get("/metrics", headers=bearer(secrets["supervisor"]))).text()
    assert 'voicebot_queue_length{queue="cards"} 2' in text
    assert 'voicebot_queue_asa_seconds{queue="cards"} 10' in text
    assert 'voicebot_queue_service_level_ratio{queue="cards",threshold_s="20"} 1' in text
    assert 'voicebot_agents{state="reserved"} 1' in text
    assert "voicebot_agent_occupancy_ratio 1" in text
    assert 'voicebot_queue_abandonment_ratio{queue="cards"} 0' in text


async def test_websocket_requires_auth_then_pushes_screen_pop_and_takes_commands(client, tokens, service, clock):
    _, secrets = tokens
    ws = await client.ws_connect("/ws/agent")
    await ws.send_json({"type": "auth", "token": "vbt_nope_nope"})
    closed = await ws.receive()
    assert closed.type.name in ("CLOSE", "CLOSED") and ws.close_code == 4401
    supervisor = await client.ws_connect("/ws/agent")
    await supervisor.send_json({"type": "auth", "token": secrets["supervisor"]})
    await supervisor.receive()
    assert supervisor.close_code == 4403

    ws = await client.ws_connect("/ws/agent")
    await ws.send_json({"type": "auth", "token": secrets["a1"]})
    hello = await ws.receive_json(timeout=5)
    assert hello == {"type": "hello", "agent": "a1", "name": "Alice", "state": "offline", "assignment": None}
    await ws.send_json({"type": "state", "state": "available"})
    assert (await ws.receive_json(timeout=5))["state"] == "available"
    record = CallContextRecord.new("call-9", "+15550100", "en-US", clock.now)
    record.intents.append("balance")
    await service.put_context(record)
    await service.enqueue("call-9", "cards", context_id=record.context_id)
    messages = [await ws.receive_json(timeout=5), await ws.receive_json(timeout=5)]
    pop = next(m for m in messages if m["type"] == "screen_pop")
    assert pop["assignment"]["call_id"] == "call-9" and pop["context"]["intents"] == ["balance"]
    await ws.send_json({"type": "accept", "assignment": "someone-elses"})
    assert (await ws.receive_json(timeout=5))["type"] == "error"
    await ws.send_json({"type": "accept", "assignment": pop["assignment"]["id"]})
    assert (await ws.receive_json(timeout=5))["state"] == "busy"
    await ws.close()


async def test_token_cli_creates_hashed_tokens_without_defaults(tmp_path, capsys):
    path = tmp_path / "t.json"
    config = tmp_path / "voicebot.yaml"
    config.write_text(f"api: {{audit_log: {tmp_path / 'audit.jsonl'}}}\n")  # not var/audit in the working dir
    assert TokenStore.load(path).verify("vbt_anything_x") is None  # no default credentials
    assert token_main(["token", "--config", str(config), "--file", str(path), "create", "--role", "agent",
                       "--agent", "a1"]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret not in path.read_text() and stat.S_IMODE(path.stat().st_mode) == 0o600
    principal = TokenStore.load(path).verify(secret)
    assert (principal.role, principal.agent) == ("agent", "a1")
    assert token_main(["token", "--file", str(path), "create", "--role", "agent"]) == 2
    assert "needs --agent" in capsys.readouterr().err
