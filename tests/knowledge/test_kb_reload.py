"""Hot reload of the knowledge base in a serving runtime: an edited article is answered at once, a broken one is
refused with its file:line and the previous articles keep answering."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
from pathlib import Path

import pytest

from tests.knowledge.test_kb_answer import PLAN
from voicebot.config import load_server_config
from voicebot.dialplan.actions import Answer
from voicebot.runtime import Runtime
from voicebot.speech.prompts import PromptCache

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]


def touch_later(path: Path) -> None:
    stat = path.stat()
    os.utime(path, (stat.st_atime + 5, stat.st_mtime + 5))


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    plans, knowledge = tmp_path / "dialplans", tmp_path / "knowledge"
    plans.mkdir()
    (plans / "kb_answer.yaml").write_text(PLAN.format(min_score=0.3), encoding="utf-8")
    shutil.copytree(REPO / "knowledge" / "education", knowledge / "education")
    config = tmp_path / "voicebot.yaml"
    config.write_text(f"dialplans_dir: {plans}\nnlu_dir: {REPO / 'nlu_models'}\nknowledge_dir: {knowledge}\n"
                      "routing: {default_dialplan: kb_answer}\n", encoding="utf-8")
    rt = Runtime(load_server_config(config), PromptCache(tmp_path / "cache"))
    rt.load()
    return rt


def spoken(runtime: Runtime) -> str:
    result = asyncio.run(runtime.answer(Answer("what is the refund policy", "en-US", "education", ("refunds",))))
    return result.hits[0].short_answer


def test_an_edited_article_answers_at_once_and_a_broken_one_keeps_the_old_set(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    article = Path(runtime.config.knowledge_dir) / "education" / "en" / "refund-policy.md"
    assert spoken(runtime).startswith("You get a full refund up to 7 days")
    assert runtime.reload_changed() == []  # nothing changed

    article.write_text(article.read_text().replace("up to 7 days", "up to 10 days"), encoding="utf-8")
    touch_later(article)
    assert runtime.reload_changed() == ["knowledge"]
    assert spoken(runtime).startswith("You get a full refund up to 10 days")

    before = runtime.knowledge
    text = article.read_text()
    article.write_text("\n".join(line for line in text.split("\n") if not line.startswith("short_answer")),
                       encoding="utf-8")
    touch_later(article)
    with caplog.at_level(logging.ERROR, logger="voicebot.runtime"):
        assert runtime.reload_changed() == []
    assert runtime.knowledge is before
    assert spoken(runtime).startswith("You get a full refund up to 10 days")  # the old set still answers
    refused = [r for r in caplog.records if r.getMessage().startswith("knowledge reload refused")]
    assert refused and f"{article}:" in refused[0].fields["error"]  # type: ignore[attr-defined]
    assert "no short_answer" in refused[0].fields["error"]  # type: ignore[attr-defined]

    article.write_text(text.replace("up to 10 days", "up to 14 days"), encoding="utf-8")
    touch_later(article)
    assert runtime.reload_changed() == ["knowledge"]
    assert spoken(runtime).startswith("You get a full refund up to 14 days")


def test_retrieval_runs_in_a_worker_thread_not_on_the_event_loop(runtime: Runtime) -> None:
    kb = runtime.knowledge
    assert kb is not None
    threads: list[int] = []
    search = kb.answer

    def recorded(action: Answer) -> object:
        threads.append(threading.get_ident())
        return search(action)

    kb.answer = recorded  # type: ignore[method-assign]

    async def call() -> int:
        await runtime.answer(Answer("refunds", "en-US", "education", ("refunds",)))
        return threading.get_ident()

    loop_thread = asyncio.run(call())
    assert threads and threads[0] != loop_thread
