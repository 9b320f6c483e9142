"""An agent whose phone is not answered is set not-ready after N consecutive unanswered offers (default 3), so
waiting callers are not held; supervisors get a live alert and see the reason; an answer resets the count."""

from __future__ import annotations

import pytest

from tests.api.conftest import bearer
from voicebot.queues.state import AcdState

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]


async def offer_to(service, call_id: str | None = None) -> str:  # type: ignore[no-untyped-def]
    """Enqueue ``call_id`` (if given); the id of the assignment the ACD is offering a1 now."""
    if call_id is not None:
        await service.enqueue(call_id, "cards")
    await service.step()
    state: AcdState = await service.snapshot()
    (assignment,) = [a for a in state.assignments.values() if a.agent_id == "a1"]
    return assignment.id


async def test_unanswered_agent_goes_not_ready_and_supervisors_are_told(client, tokens, service) -> None:
    _, secrets = tokens
    supervisor = await client.ws_connect("/ws/supervisor")
    await supervisor.send_json({"type": "auth", "token": secrets["supervisor"]})
    assert (await supervisor.receive_json(timeout=5))["type"] == "hello"
    agent_socket = await client.ws_connect("/ws/supervisor")
    await agent_socket.send_json({"type": "auth", "token": secrets["a1"]})
    await agent_socket.receive()
    assert agent_socket.close_code == 4403  # alerts are for supervisors only

    for n in range(3):
        await service.enqueue(f"call-{n}", "cards")
    await service.set_agent_state("a1", "available")
    for _ in range(2):
        await service.agent_no_answer(await offer_to(service))
        assert (await service.snapshot()).agents["a1"].state == "reserved"  # offered again: 1, 2 in a row
    await service.agent_no_answer(await offer_to(service))
    state = await service.snapshot()
    a1 = state.agents["a1"]
    assert (a1.state, a1.not_ready_reason, a1.consecutive_no_answers) == ("offline", "no_answer", 3)
    assert sorted(state.entries) == ["call-0", "call-1", "call-2"] and not state.assignments  # nobody held
    alert = await supervisor.receive_json(timeout=5)
    assert alert == {"type": "agent_not_ready", "agent": "a1", "reason": "no_answer", "no_answers": 3}
    response = await client.get("/agents", headers=bearer(secrets["supervisor"]))
    listed = {a["id"]: a for a in (await response.json())["agents"]}
    assert listed["a1"]["state"] == "offline" and listed["a1"]["not_ready_reason"] == "no_answer"

    await service.set_agent_state("a1", "available")  # back at the desk: reason and count cleared
    a1 = (await service.snapshot()).agents["a1"]
    assert (a1.not_ready_reason, a1.consecutive_no_answers) == (None, 0)
    await supervisor.close()


async def test_an_answer_resets_the_count(service) -> None:  # type: ignore[no-untyped-def]
    for n in range(3):
        await service.enqueue(f"call-{n}", "cards")
    await service.set_agent_state("a1", "available")
    for _ in range(2):
        await service.agent_no_answer(await offer_to(service))
    answered = await offer_to(service)
    call_id = (await service.snapshot()).assignments[answered].call_id
    await service.agent_answered(answered)
    assert (await service.snapshot()).agents["a1"].consecutive_no_answers == 0
    await service.call_ended(call_id)
    await service.set_agent_state("a1", "available")  # end wrap-up early
    await service.agent_no_answer(await offer_to(service))
    a1 = (await service.snapshot()).agents["a1"]
    assert a1.state == "reserved" and a1.consecutive_no_answers == 1  # 2 + answer + 1: still taking calls
