"""The dialplan action `answer:` end to end: the real education NLU and the real knowledge base (the shipped
education articles), the threshold's nomatch path, the more / agent offer, and a call session whose record keeps
the article and version that answered (retrieval in a worker thread)."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import threading
from pathlib import Path

import pytest

from voicebot.channels.text import TextChannel
from voicebot.calls.conversation import DialplanSession
from voicebot.dialplan import actions as act
from voicebot.dialplan import events as ev
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.loader import load_dialplan
from voicebot.dialplan.schema import Dialplan
from voicebot.dialplan.testing import ConversationTest, run_case
from voicebot.knowledge.base import KnowledgeBase, load_knowledge
from voicebot.nlu.base import NluEngine, load_nlu
from voicebot.records.journal import CallJournal
from voicebot.records.store import SqliteRecordStore
from voicebot.yamlsrc import ConfigErrors

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 12, 7)
PLAN = """\
dialplan: kb_answer
languages: [en-US, zh-CN]
auto_language: true
nlu: education
knowledge: education
start: greet
global:
  intents: {{agent: desk}}
  dtmf: {{"0": desk}}
nodes:
  greet:
    say: {{en: "How can I help?", zh: "请问有什么可以帮您？"}}
    listen:
      intents: {{refund_policy: refunds}}
      dtmf: {{"4": refunds}}
  refunds:
    answer: {{from: knowledge, tags: [refunds], min_score: {min_score}, then: done, nomatch: desk}}
  done:
    say: {{en: "Anything else?", zh: "还有别的吗？"}}
    hangup: true
  desk:
    say: {{en: "Let me get you the front desk.", zh: "为您转接前台。"}}
    hangup: transferred
"""


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    root = tmp_path_factory.mktemp("kb")
    shutil.copytree(REPO / "knowledge" / "education", root / "education")
    return load_knowledge(root, today=TODAY)


@pytest.fixture(scope="module")
def nlu() -> NluEngine:
    return load_nlu(REPO / "nlu_models" / "education")


def plan_with(tmp_path: Path, min_score: float) -> Dialplan:
    path = tmp_path / "kb_answer.yaml"
    path.write_text(PLAN.format(min_score=min_score), encoding="utf-8")
    return load_dialplan(path)


def case(steps: list[dict], lang: str = "en-US") -> ConversationTest:
    return ConversationTest.model_validate({"name": "kb", "context": {"lang": lang}, "steps": steps})


def answerer(kb: KnowledgeBase):  # type: ignore[no-untyped-def]
    return lambda action: kb.answer(action, day=TODAY)


def test_answered_in_english_then_more_detail(tmp_path: Path, kb: KnowledgeBase, nlu: NluEngine) -> None:
    result = run_case(plan_with(tmp_path, 0.3), case([
        {"caller": "what is your refund policy", "article": "edu-refund-policy-en",
         "bot": ["full refund up to 7 days", "more detail"], "step": "answer_offer"},
        {"caller": "tell me more", "bot": ["Exam fees paid to exam boards are not refundable", "Anything else"],
         "ended": True},
    ]), nlu=nlu, knowledge=answerer(kb))
    assert result.passed, result.failure
    assert result.trail == ["greet", "refunds", "done"]


def test_answered_in_mandarin_and_agent_from_the_offer(tmp_path: Path, kb: KnowledgeBase, nlu: NluEngine) -> None:
    result = run_case(plan_with(tmp_path, 0.3), case([
        {"caller": "请问退费政策是怎样的", "article": "edu-refund-policy-zh", "bot": ["全额退款", "需要详细说明吗"]},
        {"caller": "转人工", "bot": "为您转接前台", "ended": True},
    ], lang="zh-CN"), nlu=nlu, knowledge=answerer(kb))
    assert result.passed, result.failure
    assert result.trail[-1] == "desk"


def test_below_the_threshold_the_nomatch_path_is_taken(tmp_path: Path, kb: KnowledgeBase,
                                                       nlu: NluEngine) -> None:
    steps = [{"caller": "what is your refund policy", "article": "none", "bot": "front desk",
              "not_bot": "full refund", "ended": True}]
    result = run_case(plan_with(tmp_path, 0.95), case(steps), nlu=nlu, knowledge=answerer(kb))
    assert result.passed, result.failure
    state, actions = Interpreter(plan_with(tmp_path, 0.95)).start(ev.CallContext(lang="en-US"))
    state, actions = Interpreter(plan_with(tmp_path, 0.95)).handle(
        state, ev.Heard("refund policy", "refund_policy", {}, 0.9))
    assert isinstance(actions[-1], act.Answer) and actions[-1].tags == ("refunds",)
    logged = Interpreter(plan_with(tmp_path, 0.95)).handle(state, kb.answer(actions[-1], day=TODAY))[1]
    nomatch = [a.data for a in logged if isinstance(a, act.LogEvent) and a.kind == "knowledge_nomatch"]
    assert nomatch and nomatch[0]["best"] == "edu-refund-policy-en" and nomatch[0]["score"] < 0.95


def test_keypad_then_no_and_silence_go_on(tmp_path: Path, kb: KnowledgeBase, nlu: NluEngine) -> None:
    for reply in ({"dtmf": "2"}, {"noinput": True}, {"caller": "no thanks"}):
        result = run_case(plan_with(tmp_path, 0.3), case([
            {"dtmf": "4", "article": "edu-refund-policy-en"},  # nothing said: the tags are the question
            {**reply, "bot": "Anything else", "not_bot": "Exam fees", "ended": True},
        ]), nlu=nlu, knowledge=answerer(kb))
        assert result.passed, (reply, result.failure)


def test_answer_without_a_collection_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.format(min_score=0.3).replace("knowledge: education\n", ""), encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load_dialplan(path)
    assert f"{path}:16:5: nodes.refunds.answer: answer: needs" in str(caught.value)  # one line up: no knowledge:
    assert "add knowledge: <collection>" in str(caught.value)
    path.write_text(PLAN.format(min_score=0.3).replace("then: done", "then: nowhere"), encoding="utf-8")
    with pytest.raises(ConfigErrors, match=r"plan\.yaml:17:\d+: .*'nowhere' is not a node"):
        load_dialplan(path)
    path.write_text(PLAN.format(min_score=1.5), encoding="utf-8")
    with pytest.raises(ConfigErrors, match=r"plan\.yaml:17:\d+: .*min_score"):
        load_dialplan(path)


@pytest.mark.asyncio
async def test_a_call_record_keeps_the_article_and_version(tmp_path: Path, kb: KnowledgeBase,
                                                           nlu: NluEngine) -> None:
    threads: list[int] = []

    async def knowledge(action: act.Answer) -> ev.KnowledgeResult:
        def search() -> ev.KnowledgeResult:
            threads.append(threading.get_ident())
            return kb.answer(action, day=TODAY)
        return await asyncio.get_running_loop().run_in_executor(None, search)

    store = SqliteRecordStore(tmp_path / "calls.sqlite3")
    journal = CallJournal(store)
    channel = TextChannel(["what is your refund policy", "no"])
    session = DialplanSession(channel, Interpreter(plan_with(tmp_path, 0.3)),
                              ev.CallContext(caller="5550100", channel="text", lang="en-US", call_id="kb-call"),
                              channel.speech, nlu, knowledge=knowledge)
    journal.start("kb-call", caller="5550100", dialplan="kb_answer")
    session.transcript.events.subscribe(journal.observer("kb-call"))
    await asyncio.wait_for(session.run(), 120)
    assert journal.flush()
    assert threads and threading.get_ident() not in threads  # retrieval ran off the event loop's thread
    assert any("full refund up to 7 days" in text for text in channel.said), channel.said
    answered = [e for e in store.events("kb-call") if e.kind == "knowledge_answer"]
    assert len(answered) == 1
    data = answered[0].data
    assert (data["article"], data["version"]) == ("edu-refund-policy-en", 3) and data["score"] >= 0.3
    journal.close()
