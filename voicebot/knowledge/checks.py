"""Cross-checks between dialplans and the knowledge base, for `voicebot validate`: every `answer:` node must be
able to find something in each of the dialplan's languages (its collection exists, its tags are used)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from voicebot.dialplan.schema import Dialplan
from voicebot.knowledge.articles import Article
from voicebot.yamlsrc import YamlSourceError, load_yaml

__all__ = ["answer_errors"]


def answer_errors(plans: Mapping[str, Dialplan], articles: Sequence[Article]) -> list[YamlSourceError]:
    """Problems of the answer: nodes of valid plans ({path: plan}) against the articles, at file:line."""
    errors: list[YamlSourceError] = []
    for path, plan in plans.items():
        answers = {name: node.answer for name, node in plan.nodes.items() if node.answer is not None}
        if not answers:
            continue
        _, lines = load_yaml(path)
        collection = [a for a in articles if a.collection == plan.knowledge]
        if not collection:
            known = sorted({a.collection for a in articles})
            line, column = lines.line_for(("knowledge",))
            errors.append(YamlSourceError(path, line, column, f"knowledge: no articles in collection "
                                          f"{plan.knowledge!r}", f"collections are: {', '.join(known) or 'none'}; "
                                          f"add knowledge/{plan.knowledge}/<lang>/<article>.md"))
            continue
        for name, spec in answers.items():
            assert spec is not None
            for lang in plan.languages:
                primary = lang.split("-")[0]
                in_lang = [a for a in collection if a.meta.lang == primary]
                tags = {tag for a in in_lang for tag in a.meta.tags}
                for index, tag in enumerate(spec.tags):
                    if tag in tags or "{" in tag:  # a template: known at run time only
                        continue
                    close = difflib.get_close_matches(tag, sorted(tags), n=1)
                    line, column = lines.line_for(("nodes", name, "answer", "tags", index))
                    errors.append(YamlSourceError(
                        path, line, column, f"node {name!r} (answer.tags): no {primary} article in "
                        f"{plan.knowledge!r} has the tag {tag!r}",
                        f"did you mean {close[0]!r}?" if close else f"tag an article in knowledge/{plan.knowledge}/"
                        f"{primary}/ with it"))
    return errors
