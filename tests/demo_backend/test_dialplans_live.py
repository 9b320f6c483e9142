"""The finance, e-commerce and demo dialplans driven by their interpreter against the real demo backend over HTTP.

Caller input is given as events (no speech, no NLU); every Webhook action is performed by
`voicebot.dialplan.webhooks.perform` on the backend's `endpoints()`, exactly as a call session does.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from voicebot.demo_backend import DemoBackend, start_demo_backend
from voicebot.demo_backend.data import new_store
from voicebot.dialplan import CallContext, Interpreter, load_dialplan
from voicebot.dialplan import actions as act
from voicebot.dialplan import events as ev
from voicebot.dialplan.webhooks import perform
from voicebot.knowledge.base import KnowledgeBase, load_knowledge

REPO = Path(__file__).resolve().parents[2]
DIALPLANS = REPO / "dialplans"

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


@functools.lru_cache(maxsize=1)
def knowledge_base() -> KnowledgeBase:
    return load_knowledge(REPO / "knowledge")


class LiveCall:
    """One call: events in, webhooks performed against the backend until the dialplan waits for the caller."""

    def __init__(self, plan_name: str, backend: DemoBackend, http: httpx.AsyncClient) -> None:
        self.interpreter = Interpreter(load_dialplan(DIALPLANS / f"{plan_name}.yaml"))
        self.backend, self.http = backend, http
        self.said: list[str] = []
        self.actions: list[act.Action] = []
        self.webhooks: list[act.Webhook] = []

    async def start(self, caller: str, lang: str | None = None) -> LiveCall:
        state, actions = self.interpreter.start(CallContext(caller=caller, lang=lang, channel="test"))
        self.state = state
        await self._settle(actions)
        return self

    async def send(self, event: ev.Event) -> str:
        """The bot's prompts in answer to the event, joined."""
        before = len(self.said)
        state, actions = self.interpreter.handle(self.state, event)
        self.state = state
        await self._settle(actions)
        return " | ".join(self.said[before:])

    async def _settle(self, actions: list[act.Action]) -> None:
        while True:
            self.actions += actions
            self.said += [a.text for a in actions if isinstance(a, act.Say)]
            answers = [a for a in actions if isinstance(a, act.Answer)]
            if answers:  # answer: nodes are served from the shipped knowledge base, as the server does
                self.state, actions = self.interpreter.handle(self.state, knowledge_base().answer(answers[-1]))
                continue
            hooks = [a for a in actions if isinstance(a, act.Webhook)]
            if not hooks:
                return
            self.webhooks.append(hooks[-1])
            result = await perform(hooks[-1], self.http, endpoints=self.backend.endpoints())
            self.state, actions = self.interpreter.handle(self.state, result)

    def enqueued(self) -> act.Enqueue:
        return next(a for a in reversed(self.actions) if isinstance(a, act.Enqueue))


@pytest_asyncio.fixture
async def backend() -> AsyncIterator[DemoBackend]:
    running = await start_demo_backend(store=new_store(today=dt.date(2026, 11, 10)))
    yield running
    await running.close()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def test_finance_lost_card_is_blocked_and_secrets_stay_out_of_the_transcript(
        backend: DemoBackend, http: httpx.AsyncClient) -> None:
    call = await LiveCall("finance", backend, http).start("+15550100", "en-US")
    assert "Welcome to Example Bank, Alice" in call.said[0]
    await call.send(ev.Heard("I lost my card", "lost_card", {}, 0.99, None))  # the finance NLU reads it at 1.0
    await call.send(ev.Keys("1234"))
    await call.send(ev.Keys("1"))
    said = await call.send(ev.Keys("2468"))
    assert "Shall I block it" in said
    said = await call.send(ev.Keys("1"))
    assert "ending in 4567 is now blocked" in said and "BLK-1001" in said
    assert backend.store.cards["C001"][0]["status"] == "blocked"
    assert [hook.name for hook in call.webhooks] == ["finance.lookup", "finance.verify", "finance.block_card"]
    transcript = json.dumps(call.state.history)
    assert "2468" not in transcript and "1234" not in transcript
    assert [a.paused for a in call.actions if isinstance(a, act.SetRecording)] == [True, False, True, False]


async def test_finance_lost_card_is_named_among_two_and_a_misheard_number_blocks_the_right_one(
        backend: DemoBackend, http: httpx.AsyncClient) -> None:
    call = await LiveCall("finance", backend, http).start("+8613800138000", "zh-CN")
    await call.send(ev.Keys("2"))
    await call.send(ev.Keys("5678"))
    await call.send(ev.Keys("2"))
    said = await call.send(ev.Keys("19900808"))
    assert "您在我行有2张卡" in said
    said = await call.send(ev.Heard("八八四二", None, {}, 0.8, "zh"))  # one digit misheard: 8841 is theirs
    assert "是尾号8 8 4 1的那张卡吗" in said
    assert "确认冻结吗" in await call.send(ev.Heard("是的", "affirm", {}, 0.9, "zh"))
    said = await call.send(ev.Keys("1"))
    assert "尾号8841的银行卡已冻结" in said
    assert [card["status"] for card in backend.store.cards["C005"]] == ["active", "blocked"]
    assert call.webhooks[-1].args["card_last4"] == "8841"


async def test_finance_mandarin_balance_with_birth_date(backend: DemoBackend, http: httpx.AsyncClient) -> None:
    call = await LiveCall("finance", backend, http).start("+8613800138000", "zh-CN")
    await call.send(ev.Keys("1"))
    await call.send(ev.Keys("5678"))
    await call.send(ev.Keys("2"))
    said = await call.send(ev.Keys("19900808"))
    assert "可用余额为8800.0CNY" in said and "超市购物" in said


async def test_finance_wrong_pin_reaches_an_agent_with_context(backend: DemoBackend,
                                                               http: httpx.AsyncClient) -> None:
    call = await LiveCall("finance", backend, http).start("+15550100")
    for keys in ("4", "1234", "1", "9999"):
        said = await call.send(ev.Keys(keys))
    assert "could not verify" in said
    queued = call.enqueued()
    assert queued.queue == "banking" and queued.context["reason"] == "verification_failed"
    assert "9999" not in json.dumps(queued.context)


async def test_finance_loan_extension_reaches_the_specialist(backend: DemoBackend,
                                                             http: httpx.AsyncClient) -> None:
    call = await LiveCall("finance", backend, http).start("+15550100")
    for keys in ("4", "1234", "1", "2468"):
        await call.send(ev.Keys(keys))
    queued = call.enqueued()
    assert queued.queue == "loans" and "loan_extension" in queued.skills and "lang:en-US" in queued.skills
    assert queued.context["loan_id"] == "L-7781"


async def test_finance_backend_failure_takes_the_on_error_path(backend: DemoBackend,
                                                               http: httpx.AsyncClient) -> None:
    call = await LiveCall("finance", backend, http).start("+15550199")
    assert "Welcome to Example Bank." in call.said[0]  # the lookup failed: no name
    for keys in ("1", "1234", "1"):
        await call.send(ev.Keys(keys))
    said = await call.send(ev.Keys("2468"))
    assert "systems are not responding" in said and call.enqueued().context["reason"] == "system_unavailable"


async def test_finance_elderly_caller_gets_the_slow_menu(backend: DemoBackend, http: httpx.AsyncClient) -> None:
    call = await LiveCall("finance", backend, http).start("+15550101")
    assert "I will speak slowly" in call.said[0]
    await call.send(ev.Keys("1"))
    await call.send(ev.Keys("4321"))
    said = await call.send(ev.Keys("19420203"))
    assert "18250.0 USD" in said


async def test_ecommerce_latest_order_spoken_then_intercepted(backend: DemoBackend,
                                                              http: httpx.AsyncClient) -> None:
    call = await LiveCall("ecommerce", backend, http).start("+15550100", "en-US")
    assert "Your latest order, A12-3456, wireless headphones, is on its way" in call.said[0]
    await call.send(ev.Keys("4"))
    said = await call.send(ev.Keys("1"))
    assert "A12-3456 is stopped" in said
    assert backend.store.orders["C001"][0]["status"] == "cancelled"


async def test_ecommerce_custom_item_return_exception(backend: DemoBackend, http: httpx.AsyncClient) -> None:
    call = await LiveCall("ecommerce", backend, http).start("voicebot")
    said = await call.send(ev.Keys("3"))
    assert "is a special item" in said and "Custom-made items cannot be returned" in said  # the knowledge article


async def test_ecommerce_logistics_complaint_writes_a_case_and_routes_by_skill(
        backend: DemoBackend, http: httpx.AsyncClient) -> None:
    call = await LiveCall("ecommerce", backend, http).start("+15550100")
    await call.send(ev.Keys("5"))
    await call.send(ev.Keys("2"))
    said = await call.send(ev.Heard("the parcel came three days late", None, {}, 1.0, None))
    assert "case number is CASE-1001" in said
    queued = call.enqueued()
    assert "logistics" in queued.skills and queued.context["case_id"] == "CASE-1001"
    case = backend.store.cases[-1]
    assert case["category"] == "logistics" and case["order_id"] == "A12-3456" and "late" in case["details"]


async def test_ecommerce_mandarin_refund_for_the_latest_order(backend: DemoBackend,
                                                              http: httpx.AsyncClient) -> None:
    call = await LiveCall("ecommerce", backend, http).start("+8613800138000", "zh-CN")
    assert "电饭煲，已发货" in call.said[0]
    said = await call.send(ev.Keys("2"))
    assert "退款50.0元已退款" in said


async def test_demo_dialplan_pays_a_bill(backend: DemoBackend, http: httpx.AsyncClient) -> None:
    call = await LiveCall("demo", backend, http).start("+15550100")
    assert "Welcome to Acme Telecom, Alice" in call.said[0]
    for keys in ("2", "123456", "1", "1234"):
        await call.send(ev.Keys(keys))
    await call.send(ev.Keys("20"))
    said = await call.send(ev.Keys("1"))
    assert "confirmation number is AC-1001" in said
