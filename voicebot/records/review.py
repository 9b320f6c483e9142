"""The improvement loop's input: what callers said that the bot did not understand, grouped by similarity.

From the call records: caller turns with no intent or `out_of_scope` (spoken, not keyed, not masked), with where
they were said and whether the call then went to a person. Similar utterances are grouped (content words for
English, overlapping character pairs for Chinese, half of the shorter one's in common) so an author labels a group once; `voicebot nlu add` (or the
review page's download) puts the labelled examples into the domain's nlu.yml, and `voicebot nlu eval` shows the
effect. Pure grouping; the query runs on a connection it is given.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from voicebot.records.analytics import AnalyticsFilter, _Sql

__all__ = ["Utterance", "UtteranceGroup", "group_similar", "knowledge_misses", "not_understood"]

_SIMILAR = 0.5  # share of the shorter utterance's features two utterances must have in common to share a group
_STOP = frozenset({"i", "a", "an", "the", "to", "my", "is", "it", "of", "and", "please", "can", "you", "me", "do",
                   "want", "would", "like", "what", "how", "for", "in", "on", "this", "that", "be", "we", "um", "uh"})


@dataclass(frozen=True)
class Utterance:
    text: str
    dialplan: str
    node: str
    lang: str
    to_person: bool


@dataclass
class UtteranceGroup:
    examples: list[Utterance] = field(default_factory=list)
    features: set[str] = field(default_factory=set)

    @property
    def count(self) -> int:
        return len(self.examples)

    def summary(self, shown: int = 10) -> dict[str, Any]:
        texts = Counter(example.text for example in self.examples)
        return {
            "count": self.count,
            "examples": [text for text, _ in texts.most_common(shown)],
            "nodes": dict(Counter(f"{e.dialplan}/{e.node}" for e in self.examples).most_common()),
            "languages": dict(Counter(e.lang for e in self.examples)),
            "then_to_person": sum(e.to_person for e in self.examples),
        }


def features(text: str) -> set[str]:
    lowered = text.lower()
    words = {word for word in re.findall(r"[a-z0-9']+", lowered) if word not in _STOP}
    hanzi = re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff]+", lowered)
    pairs = {run[i:i + 2] for run in hanzi for i in range(max(1, len(run) - 1))}
    return words | pairs


def _close(a: set[str], b: set[str]) -> bool:
    """Two utterances say the same thing: they share at least two features, and at least half of the shorter's."""
    shared = len(a & b)
    return shared >= 2 and shared >= _SIMILAR * min(len(a), len(b))


def group_similar(utterances: list[Utterance]) -> list[UtteranceGroup]:
    """Greedy single pass: an utterance joins the first group one of whose first examples it is close to (see
    _close), or starts a group; largest groups first."""
    groups: list[UtteranceGroup] = []
    seeds: list[list[set[str]]] = []
    for utterance in utterances:
        mine = features(utterance.text)
        for group, examples in zip(groups, seeds):
            if any(_close(mine, other) for other in examples):
                break
        else:
            group, examples = UtteranceGroup(), []
            groups.append(group)
            seeds.append(examples)
        group.examples.append(utterance)
        group.features |= mine
        if len(examples) < 5:
            examples.append(mine)
    return sorted(groups, key=lambda group: -group.count)


_SCOPE_SQL = ("AND c.started_at >= CAST(:since AS DOUBLE PRECISION) AND c.started_at < CAST(:until AS DOUBLE PRECISION) "
              "AND (CAST(:dialplan AS TEXT) IS NULL OR c.dialplan = CAST(:dialplan AS TEXT)) "
              "ORDER BY e.t DESC LIMIT :limit")  # the review's scope: time window and dialplan, newest first


def _utterances(rows: list[tuple[Any, ...]], scope: AnalyticsFilter) -> list[Utterance]:
    """Rows (text, dialplan, node, lang, then to a person) as Utterances, in the scope's language."""
    wanted = scope.lang.split("-")[0] if scope.lang else None
    return [Utterance(str(text), str(dialplan or ""), str(node), str(lang), bool(to_person))
            for text, dialplan, node, lang, to_person in rows
            if wanted is None or (lang or "en").split("-")[0] == wanted]


def not_understood(db: Any, scope: AnalyticsFilter, *, dialect: str = "sqlite", limit: int = 5000) -> list[Utterance]:
    """Caller turns in `scope` that no intent took (newest first, at most `limit`)."""
    sql = _Sql(db, dialect)
    rows = sql.all(
        "SELECT {j:text}, c.dialplan, COALESCE({j:node}, (SELECT {n:node} FROM call_events n "
        "WHERE n.call_id = e.call_id AND n.kind = 'node' AND n.seq < e.seq ORDER BY n.seq DESC LIMIT 1), ''), "
        "COALESCE({j:lang}, ''), "
        "EXISTS (SELECT 1 FROM call_events x WHERE x.call_id = c.call_id "
        "        AND x.kind IN ('agent_answered', 'queue_joined', 'transferred')) "
        "FROM call_events e JOIN calls c ON c.call_id = e.call_id "
        "WHERE e.kind = 'caller' AND COALESCE({j:intent}, 'out_of_scope') = 'out_of_scope' "
        "AND COALESCE({j:kind}, '') NOT IN ('dtmf', 'nomatch') AND COALESCE({j:text}, '') NOT IN ('', '[sensitive]') "
        f"{_SCOPE_SQL}", {**scope.params(), "limit": limit})
    return _utterances(rows, scope)


def knowledge_misses(db: Any, scope: AnalyticsFilter, *, dialect: str = "sqlite",
                     limit: int = 5000) -> list[Utterance]:
    """Questions the knowledge base had no article for (an `answer:` below its min_score): the caller's words
    before each `knowledge_nomatch`, newest first — what to write an article about next."""
    sql = _Sql(db, dialect)
    rows = sql.all(
        "SELECT {q:text}, c.dialplan, COALESCE((SELECT {n:node} FROM call_events n WHERE n.call_id = e.call_id "
        "AND n.kind = 'node' AND n.seq < e.seq ORDER BY n.seq DESC LIMIT 1), ''), COALESCE({q:lang}, ''), "
        "EXISTS (SELECT 1 FROM call_events x WHERE x.call_id = c.call_id "
        "        AND x.kind IN ('agent_answered', 'queue_joined', 'transferred')) "
        "FROM call_events e JOIN calls c ON c.call_id = e.call_id "
        "JOIN call_events q ON q.call_id = e.call_id AND q.seq = (SELECT MAX(p.seq) FROM call_events p "
        "    WHERE p.call_id = e.call_id AND p.kind = 'caller' AND p.seq < e.seq) "
        "WHERE e.kind = 'knowledge_nomatch' AND COALESCE({q:kind}, '') NOT IN ('dtmf', 'nomatch') "
        "AND COALESCE({q:text}, '') NOT IN ('', '[sensitive]') "
        f"{_SCOPE_SQL}", {**scope.params(), "limit": limit})
    return _utterances(rows, scope)
