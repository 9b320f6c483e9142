"""The after-call summary (issue 19): an extractive digest of one call's record events. Pure, no I/O.

    summary = summarize([(e.kind, e.data) for e in store.events(call_id)])
    summary.text("zh-CN")   # the same facts in Chinese

It picks, never invents: the last recognised intent, whether identity was verified (yes/no only: a `verified*` node
was entered or an `identity` event said so), the filled slots (values of sensitive slots masked, every value
redacted), the outcome, a few of the caller's own lines (redacted), the knowledge articles that answered
(`answer`/`knowledge` events, when the knowledge base is in use) and the quality flags (`quality` events).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from voicebot.compliance.redact import redact
from voicebot.records.metrics import classify

__all__ = ["AfterCallSummary", "needs_case", "summarize"]

MASK = "****"
_SENSITIVE_SLOT_WORDS = ("card", "pin", "ssn", "password", "passcode", "cvv", "account", "id_number", "dob", "birth")
_KEY_LINES = 3
_LINE_CHARS = 200
_RESOLVED = ("contained", "callback")  # the bot finished the job, or the ACD already owns a callback

Event = tuple[str, Mapping[str, Any]]


@dataclass
class AfterCallSummary:
    intent: str = ""
    identity_verified: bool = False
    slots: dict[str, str] = field(default_factory=dict)
    outcome: str = ""
    reached_agent: bool = False
    agent: str = ""
    key_lines: list[str] = field(default_factory=list)
    articles: list[dict[str, str]] = field(default_factory=list)
    qa_flags: list[str] = field(default_factory=list)
    disposition: str = ""
    call_class: str = ""  # voicebot.records.metrics.classify: contained, transferred, abandoned_in_bot, ...
    engaged: bool = False  # the caller said or keyed something, or waited in a queue

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self, lang: str = "en-US") -> str:
        """The summary as short lines, in English or Chinese."""
        zh = lang.lower().startswith("zh")
        yes, no, none = ("是", "否", "无") if zh else ("yes", "no", "none")
        labels = (("意图", "身份已核实", "信息", "结果", "转人工", "来电者原话", "引用知识", "质检", "处理结果")
                  if zh else ("Intent", "Identity verified", "Details", "Outcome", "Reached an agent",
                              "Caller said", "Articles used", "QA flags", "Disposition"))
        slots = ", ".join(f"{k}={v}" for k, v in self.slots.items()) or none
        articles = ", ".join(f"{a['id']}@{a['version']}" if a.get("version") else a["id"]
                             for a in self.articles) or none
        values = (self.intent or none, yes if self.identity_verified else no, slots, self.outcome or none,
                  (f"{yes} ({self.agent})" if self.agent else yes) if self.reached_agent else no,
                  " / ".join(f"“{line}”" for line in self.key_lines) or none, articles,
                  ", ".join(self.qa_flags) or none, self.disposition or none)
        sep = "：" if zh else ": "
        return "\n".join(f"{label}{sep}{value}" for label, value in zip(labels, values))


def _sensitive(slot: str, listed: Iterable[str]) -> bool:
    name = slot.lower()
    return name in listed or any(word in name for word in _SENSITIVE_SLOT_WORDS)


def summarize(events: Iterable[Event], *, sensitive_slots: Iterable[str] = ()) -> AfterCallSummary:
    """The after-call summary of a call's events (kind, data) in record order."""
    listed = {s.lower() for s in sensitive_slots}
    out = AfterCallSummary()
    lines: list[str] = []
    kinds: set[str] = set()
    for kind, data in events:
        kinds.add(kind)
        if kind in ("caller", "queue_joined"):
            out.engaged = True
        if kind == "caller":
            intent = data.get("intent")
            if isinstance(intent, str) and intent:
                out.intent = intent
            text = data.get("text")
            if data.get("kind") not in ("dtmf", "nomatch") and isinstance(text, str) and text.strip():
                lines.append(redact(text.strip())[:_LINE_CHARS])
        elif kind == "slot" and isinstance(data.get("slot"), str):
            slot, value = data["slot"], data.get("value")
            out.slots[slot] = MASK if _sensitive(slot, listed) or value == MASK else redact(str(value))[:_LINE_CHARS]
        elif kind == "node" and str(data.get("node") or "").lower().startswith(("verified", "identity_verified")):
            out.identity_verified = True
        elif kind == "identity":
            out.identity_verified = bool(data.get("verified"))
        elif kind in ("agent_answered", "transferred"):
            out.reached_agent = True
            agent = data.get("agent")
            out.agent = agent if isinstance(agent, str) else out.agent
        elif kind in ("knowledge_answer", "answer", "knowledge"):
            article = data.get("article") or data.get("id")
            if isinstance(article, str) and article and all(a["id"] != article for a in out.articles):
                out.articles.append({"id": article, "version": str(data.get("version") or "")})
        elif kind == "quality":
            flag = data.get("rule") or data.get("flag") or data.get("kind")
            if isinstance(flag, str) and flag and flag not in out.qa_flags:
                out.qa_flags.append(flag)
        elif kind == "disposition" and isinstance(data.get("code"), str):
            out.disposition = data["code"]
        elif kind == "call_ended":
            out.outcome = str(data.get("outcome") or "")
    out.key_lines = _key_lines(lines)
    out.call_class = classify(out.outcome, kinds, ended="call_ended" in kinds)
    return out


def _key_lines(lines: list[str]) -> list[str]:
    """The caller's longest few lines (most content), in the order they were said."""
    chosen = sorted(sorted(range(len(lines)), key=lambda i: -len(lines[i]))[:_KEY_LINES])
    return [lines[i] for i in chosen]


def needs_case(summary: AfterCallSummary) -> bool:
    """A case follows a call that reached an agent, or that ended unresolved (not completed by the bot) after the
    caller asked for something; a caller who hung up during the greeting leaves nothing to follow up."""
    return summary.reached_agent or (summary.engaged and summary.call_class not in _RESOLVED)
