"""The knowledge base: every article under `knowledge/<collection>/<lang>/*.md`, checked, linted and indexed.

    kb = load_knowledge(Path("knowledge"))                 # raises ConfigErrors naming file:line and the fix
    hits = kb.search("can I get my money back", "en", collection="education", tags=["refunds"])
    report = check_knowledge(Path("knowledge"))            # for `voicebot validate`: errors + expired articles

Checks: front matter (ArticleMeta, file:line), a short answer written for the ear, unique ids across the whole
base, the compliance policies of the collection (policies/*.yaml whose applies_to matches the collection name,
e.g. finance: no "guaranteed returns" in an article either) and validity dates. An article past its valid_until
is an error for `voicebot validate`; a server keeps loading the rest (the date filter leaves it out).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from voicebot.compliance.lint import DEFAULT_POLICY_DIR, Policy, forbidden_in, load_policies, policies_for
from voicebot.dialplan.actions import Answer
from voicebot.dialplan.events import KnowledgeHit, KnowledgeResult
from voicebot.knowledge.articles import Article, read_article
from voicebot.knowledge.retrieval import Hit, KnowledgeIndex
from voicebot.knowledge.vectorcache import VectorCache
from voicebot.yamlsrc import ConfigErrors, YamlSourceError

__all__ = ["KnowledgeBase", "KnowledgeReport", "check_knowledge", "knowledge_stamp", "load_knowledge"]


@dataclass
class KnowledgeReport:
    articles: list[Article] = field(default_factory=list)
    errors: list[YamlSourceError] = field(default_factory=list)
    expired: list[YamlSourceError] = field(default_factory=list)


def article_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/*/*.md"))


def knowledge_stamp(root: Path) -> tuple[tuple[str, float], ...]:
    """Names and modification times of every article: any change (edit, new file, removal) changes it."""
    stamps = []
    for path in sorted(root.rglob("*.md")):
        try:
            stamps.append((str(path), path.stat().st_mtime))
        except OSError:
            continue
    return tuple(stamps)


def _lint(article: Article, policies: list[Policy]) -> list[YamlSourceError]:
    errors = []
    spoken = [("title", article.line_of("title"), article.meta.title),
              ("short_answer", article.line_of("short_answer"), article.meta.short_answer)]
    spoken += [("body", article.body_line + index, line) for index, line in enumerate(article.body.split("\n"))]
    for policy in policies_for(article.collection, policies):
        for name, line, text in spoken:
            for item in forbidden_in(text, policy):
                reason = f" ({item.reason})" if item.reason else ""
                errors.append(YamlSourceError(article.path, line, None,
                                              f"{name}: [{policy.policy}] forbidden phrase {item.phrase!r}{reason}",
                                              "reword the article; the policy file lists what may not be said"))
    return errors


def check_knowledge(root: Path, *, today: dt.date | None = None,
                    policy_dir: Path | None = DEFAULT_POLICY_DIR) -> KnowledgeReport:
    """Parse and check every article (`policy_dir` None: no compliance lint)."""
    report = KnowledgeReport()
    day = today or dt.date.today()
    if not root.is_dir():
        report.errors.append(YamlSourceError(str(root), None, None, "knowledge directory not found",
                                             "create knowledge/<industry>/<lang>/<article>.md"))
        return report
    for stray in sorted(set(root.rglob("*.md")) - set(article_files(root))):
        if stray.parent != root:  # a README at the top is documentation
            report.errors.append(YamlSourceError(str(stray), None, None, "article outside a <collection>/<lang>/ "
                                                 "folder", f"move it to {root}/<industry>/<en|zh>/{stray.name}"))
    policies: list[Policy] = []
    if policy_dir is not None:
        try:
            policies = load_policies(policy_dir)
        except ConfigErrors as exc:
            report.errors += exc.errors
    seen: dict[str, Article] = {}
    for path in article_files(root):
        try:
            article = read_article(path, path.parent.parent.name)
        except ConfigErrors as exc:
            report.errors += exc.errors
            continue
        except YamlSourceError as exc:
            report.errors.append(exc)
            continue
        first = seen.get(article.id)
        if first is not None:
            report.errors.append(YamlSourceError(article.path, article.line_of("id"), None,
                                                 f"duplicate article id {article.id!r} (also in {first.path}:"
                                                 f"{first.line_of('id')})", "give each article its own id"))
            continue
        seen[article.id] = article
        lint = _lint(article, policies)
        if lint:
            report.errors += lint
            continue
        meta = article.meta
        if meta.valid_until is not None and meta.valid_until < day:
            report.expired.append(YamlSourceError(article.path, article.line_of("valid_until"), None,
                                                  f"article {article.id!r} expired on {meta.valid_until}",
                                                  "review it: raise valid_until and version, or delete the file"))
        report.articles.append(article)
    return report


class KnowledgeBase:
    """A loaded, immutable set of articles and their index (a reload builds a new one)."""

    def __init__(self, articles: Sequence[Article], *, encoders: dict[str, str | None] | None = None,
                 cache: VectorCache | None = None) -> None:
        self.articles = {article.id: article for article in articles}
        self.index = KnowledgeIndex(list(articles), encoders=encoders, cache=cache)

    def __len__(self) -> int:
        return len(self.articles)

    def search(self, query: str, lang: str, *, collection: str | None = None, tags: Sequence[str] = (),
               day: dt.date | None = None, k: int = 3) -> list[Hit]:
        return self.index.search(query, lang, collection=collection, tags=tags, day=day, k=k)

    def answer(self, action: Answer, day: dt.date | None = None) -> KnowledgeResult:
        """The event answering a dialplan's Answer action: its best hits (the interpreter applies min_score)."""
        query = action.query.strip() or " ".join(action.tags)
        hits = self.search(query, action.lang, collection=action.collection, tags=action.tags, day=day,
                           k=action.top_k)
        return KnowledgeResult(tuple(KnowledgeHit(hit.article.id, hit.article.meta.version, hit.article.meta.title,
                                                  hit.article.meta.short_answer, hit.article.more(), hit.score)
                                     for hit in hits), query)


def load_knowledge(root: Path, *, today: dt.date | None = None, policy_dir: Path | None = DEFAULT_POLICY_DIR,
                   encoders: dict[str, str | None] | None = None, cache: VectorCache | None = None) -> KnowledgeBase:
    """Check and index every article; raises ConfigErrors on any problem but expiry (expired articles are
    indexed and left out by the date filter, so a reload does not fail at midnight). With a `cache`, only
    articles whose text changed since it was filled are encoded (vectorcache.py)."""
    report = check_knowledge(root, today=today, policy_dir=policy_dir)
    if report.errors:
        raise ConfigErrors(report.errors)
    return KnowledgeBase(report.articles, encoders=encoders, cache=cache)
