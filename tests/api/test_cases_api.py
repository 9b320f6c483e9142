"""Cases over the API (issue 19): opened from a call's record at hang-up, listed and updated with role checks, PATCH
validation, a follow-up time scheduling an ACD callback, webhook notifications to a loopback HTTP server, and the
agent's disposition over the desktop WebSocket landing in the call's record."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.api.conftest import bearer
from voicebot.api.app import HUB_KEY, create_app
from voicebot.api.cases import CaseDesk, CaseWebhook, add_case_routes
from voicebot.dialplan.webhook_policy import WebhookEgress
from voicebot.records.cases import CaseStore
from voicebot.records.dispositions import load_dispositions
from voicebot.records.journal import CallJournal
from voicebot.records.store import SqliteRecordStore

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]
REPO = Path(__file__).resolve().parents[2]
CALLER = "+15551234567"


class Hook:
    """A loopback HTTP server standing in for an SMS gateway: it keeps what it was sent."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[dict[str, Any], str]] = asyncio.Queue()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await self.received.put((await request.json(), request.headers.get("Authorization", "")))
        return web.json_response({"ok": True})


def _record_call(store: SqliteRecordStore, call_id: str, agent: str | None, outcome: str) -> None:
    store.start_call(call_id, caller=CALLER, dialplan="finance")
    store.append(call_id, "caller", {"text": "my card 4111 1111 1111 1111 was stolen yesterday", "intent": "lost_card"})
    store.append(call_id, "slot", {"slot": "card_last_four", "value": "1111"})
    if agent:
        store.append(call_id, "queue_joined", {"queue": "cards"})
        store.append(call_id, "agent_answered", {"agent": agent})
    store.end_call(call_id, outcome=outcome)


@pytest_asyncio.fixture
async def setup(service, tokens, clock, tmp_path, monkeypatch):
    monkeypatch.setenv("VB_TEST_SMS_TOKEN", "sms-secret-123")
    hook = Hook()
    hook_app = web.Application()
    hook_app.router.add_post("/notify", hook.handle)
    hook_server = TestServer(hook_app, host="127.0.0.1")
    await hook_server.start_server()
    records = SqliteRecordStore(tmp_path / "calls.sqlite3")
    journal = CallJournal(records)
    notifier = CaseWebhook(str(hook_server.make_url("/notify")), {"Authorization": "Bearer ${VB_TEST_SMS_TOKEN}"},
                           WebhookEgress(allow=["127.0.0.1/32"]))
    desk = CaseDesk(CaseStore(tmp_path / "calls.sqlite3"), load_dispositions(REPO / "sip_config/dispositions.yaml"),
                    service, notifier=notifier, record_event=journal.append, flush=journal.flush)
    store, secrets = tokens
    app = create_app(service, store, clock=clock)
    add_case_routes(app, desk)
    app[HUB_KEY].on_disposition = desk.set_disposition
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client, desk, records, hook, secrets
    journal.close()
    await hook_server.close()


async def _case(desk: CaseDesk, records: SqliteRecordStore, call_id: str = "call-1", agent: str | None = "a1",
                outcome: str = "agent") -> dict[str, Any]:
    _record_call(records, call_id, agent, outcome)
    case = await desk.call_ended(call_id)
    assert case is not None
    return case


async def test_a_call_that_reached_an_agent_opens_a_case_with_a_redacted_summary_and_notifies(setup) -> None:
    client, desk, records, hook, secrets = setup
    case = await _case(desk, records)
    assert case["owner"] == "a1" and case["status"] == "open" and case["industry"] == "finance"
    summary = case["summary"]
    assert summary["intent"] == "lost_card" and summary["reached_agent"] and summary["outcome"] == "agent"
    assert summary["slots"] == {"card_last_four": "****"}  # a card-ish slot is masked
    assert "4111 1111" not in str(summary) and summary["key_lines"] and "stolen" in summary["key_lines"][0]
    sent, authorization = await asyncio.wait_for(hook.received.get(), 10)
    assert sent["event"] == "case_created" and sent["case"]["id"] == case["id"]
    assert sent["case"]["callback_number"] == "****4567" and CALLER not in str(sent)
    assert authorization == "Bearer sms-secret-123"  # the secret came from the environment
    assert "Intent: lost_card" in sent["case"]["summary_text"]["en-US"]
    assert "意图：lost_card" in sent["case"]["summary_text"]["zh-CN"] and "4111" not in str(sent)
    # a call the bot completed needs no case; one the caller left in the bot does
    _record_call(records, "call-ok", None, "completed")
    assert await desk.call_ended("call-ok") is None
    records.start_call("call-silent", caller=CALLER, dialplan="finance")
    records.append("call-silent", "caller_hangup", {})
    records.end_call("call-silent", outcome="caller hung up")
    assert await desk.call_ended("call-silent") is None  # hung up in the greeting: nothing to follow up
    records.start_call("call-left", caller=CALLER, dialplan="finance")
    records.append("call-left", "caller", {"text": "I need to dispute a charge", "intent": "dispute"})
    records.append("call-left", "caller_hangup", {})
    records.end_call("call-left", outcome="caller hung up")
    left = await desk.call_ended("call-left")
    assert left is not None and left["owner"] is None and left["summary"]["call_class"] == "abandoned_in_bot"


async def test_cases_need_a_token_and_agents_see_only_their_own(setup) -> None:
    client, desk, records, hook, secrets = setup
    case = await _case(desk, records)
    assert (await client.get("/cases")).status == 401
    assert (await client.get(f"/cases/{case['id']}", headers=bearer("vbt_bogus_x"))).status == 401
    assert (await client.patch(f"/cases/{case['id']}", json={"status": "closed"})).status == 401
    assert (await client.get(f"/cases/{case['id']}", headers=bearer(secrets["a2"]))).status == 403
    assert (await client.patch(f"/cases/{case['id']}", json={"status": "closed"},
                               headers=bearer(secrets["a2"]))).status == 403
    # the owner may not hand it away; a supervisor may
    assert (await client.patch(f"/cases/{case['id']}", json={"owner": "a2"},
                               headers=bearer(secrets["a1"]))).status == 403
    listed = await (await client.get("/cases", headers=bearer(secrets["a2"]))).json()
    assert listed["cases"] == []
    listed = await (await client.get("/cases", headers=bearer(secrets["a1"]))).json()
    assert [c["id"] for c in listed["cases"]] == [case["id"]]
    response = await client.patch(f"/cases/{case['id']}", json={"owner": "a2", "status": "pending"},
                                  headers=bearer(secrets["supervisor"]))
    assert response.status == 200
    assert (await response.json())["owner"] == "a2"


async def test_patch_refuses_bad_changes_with_the_field_named(setup) -> None:
    client, desk, records, hook, secrets = setup
    case = await _case(desk, records)
    url, auth = f"/cases/{case['id']}", bearer(secrets["supervisor"])
    for body, words in [({"status": "done"}, "status must be one of open, pending, closed"),
                        ({"colour": "red"}, "unknown field(s) 'colour'"),
                        ({"disposition": "plan_change"}, "not a code for finance"),
                        ({"owner": "zz"}, "owner must be a configured agent"),
                        ({"follow_up_at": 1.0}, "follow_up_at must be in the future"),
                        ({"follow_up_at": "tomorrow"}, "epoch seconds"),
                        ({}, "send a JSON object")]:
        response = await client.patch(url, json=body, headers=auth)
        assert response.status == 400, body
        assert words in (await response.json())["error"], (body, await response.json())
    response = await client.patch(url, data=b"{not json", headers={**auth, "Content-Type": "application/json"})
    assert response.status == 400
    assert (await client.patch("/cases/case-nope", json={"status": "closed"}, headers=auth)).status == 404
    assert desk.store.get(case["id"])["status"] == "open"  # type: ignore[index]


async def test_a_follow_up_time_schedules_an_acd_callback_that_an_agent_is_offered_when_due(setup, service,
                                                                                           clock) -> None:
    client, desk, records, hook, secrets = setup
    case = await _case(desk, records)
    at = clock.now + 3600
    response = await client.patch(f"/cases/{case['id']}", json={"follow_up_at": at},
                                  headers=bearer(secrets["supervisor"]))
    assert response.status == 200, await response.json()
    assert (await response.json())["status"] == "pending"
    state = await service.snapshot()
    task = state.callbacks[f"cb:followup-{case['id']}"]
    assert task.number == CALLER and task.not_before == at and task.queue == "cards"
    await service.set_agent_state("a1", "available")
    assert not (await service.snapshot()).assignments  # not due yet
    clock.now = at + 1
    await service.step()
    offered = list((await service.snapshot()).assignments.values())
    assert [(a.kind, a.call_id, a.agent_id) for a in offered] == [("callback", f"followup-{case['id']}", "a1")]
    updated = [await asyncio.wait_for(hook.received.get(), 10) for _ in range(2)][-1][0]
    assert updated["event"] == "case_updated" and updated["case"]["follow_up_at"] == at


async def test_a_disposition_chosen_on_the_agent_desktop_lands_in_the_record_and_closes_the_case(setup) -> None:
    client, desk, records, hook, secrets = setup
    case = await _case(desk, records)
    other = await client.ws_connect("/ws/agent")
    await other.send_json({"type": "auth", "token": secrets["a2"]})
    await other.receive_json(timeout=5)
    await other.send_json({"type": "disposition", "call_id": "call-1", "code": "card_blocked"})
    assert (await other.receive_json(timeout=5)) == {"type": "error", "message": "you did not answer this call"}
    offered = await (await client.get("/dispositions?call=call-1", headers=bearer(secrets["a1"]))).json()
    assert offered["industry"] == "finance" and "card_blocked" in [d["code"] for d in offered["dispositions"]]
    assert (await client.get("/dispositions?call=call-1")).status == 401
    ws = await client.ws_connect("/ws/agent")
    await ws.send_json({"type": "auth", "token": secrets["a1"]})
    assert (await ws.receive_json(timeout=5))["type"] == "hello"
    await ws.send_json({"type": "disposition", "call_id": "call-1", "code": "plan_change"})  # demo's, not finance's
    assert "not a code for finance" in (await ws.receive_json(timeout=5))["message"]
    await ws.send_json({"type": "disposition", "call_id": "call-1", "code": "card_blocked"})
    assert await ws.receive_json(timeout=5) == {"type": "disposition", "call_id": "call-1", "code": "card_blocked"}
    await asyncio.to_thread(desk.flush)  # type: ignore[misc]
    chosen = [e.data for e in records.events("call-1") if e.kind == "disposition"]
    assert chosen == [{"code": "card_blocked", "agent": "a1"}]
    after = desk.store.get(case["id"])
    assert after is not None and after["disposition"] == "card_blocked" and after["status"] == "closed"
    await ws.close()
    await other.close()
