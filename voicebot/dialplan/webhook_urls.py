"""Every webhook a dialplan calls by name must have somewhere to go.

A webhook resolves to its own `url:`, else to the server config's `webhooks: {name: url}`, else, only when the
config turns the built-in demo backend on (`demo_backend: true`), to the demo handler of that name. A name with
none of these would fail on every call, or worse be answered with sample data by a demo backend an operator
forgot about; `voicebot validate` and `voicebot serve` reject it with file:line, the webhook and the fix.

    errors = unresolved_webhooks(plan, lines, "dialplans/finance.yaml", configured={"finance.lookup"},
                                 demo_hooks=set())
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

from voicebot.dialplan.schema import Dialplan, WebhookSpec
from voicebot.yamlsrc import LineMap, Loc, YamlSourceError, format_loc, load_yaml

__all__ = ["check_webhook_urls", "demo_hook_names", "named_webhooks", "unresolved_webhooks"]


def named_webhooks(plan: Dialplan) -> Iterator[tuple[Loc, str]]:
    """(location of `name:`, name) of every webhook that has no `url:` of its own, in file order."""
    specs: list[tuple[Loc, WebhookSpec | None]] = [(("lookup",), plan.lookup)]
    specs += [(("nodes", name, "webhook"), node.webhook) for name, node in plan.nodes.items()]
    for loc, spec in specs:
        if spec is not None and not spec.url and spec.name:
            yield (*loc, "name"), spec.name


def unresolved_webhooks(plan: Dialplan, lines: LineMap, label: str, *, configured: Collection[str],
                        demo_hooks: Collection[str]) -> list[YamlSourceError]:
    """Errors for named webhooks that are neither in `configured` (the config's webhooks) nor in `demo_hooks`
    (the demo backend's handlers when it is on; empty when it is off)."""
    errors = []
    for loc, name in named_webhooks(plan):
        if name in configured or name in demo_hooks:
            continue
        line, column = lines.line_for(loc)
        errors.append(YamlSourceError(label, line, column, f"{format_loc(loc)}: webhook {name!r} has no URL",
                                      _hint(name, configured, demo_hooks)))
    return errors


def _hint(name: str, configured: Collection[str], demo_hooks: Collection[str]) -> str:
    close = difflib.get_close_matches(name, sorted({*configured, *demo_hooks}), n=1, cutoff=0.85)  # typos only
    if close:
        return f"did you mean {close[0]!r}? Otherwise add it to the server config's webhooks: {{{name}: https://…}}"
    fix = f"add it to the server config's webhooks: {{{name}: https://…}} or give the webhook a url:"
    if not demo_hooks:
        fix += " (demo_backend: true answers the sample hooks with made-up data: demos only)"
    return fix


def demo_hook_names(enabled: bool) -> frozenset[str]:
    """The webhook names the built-in demo backend answers, or none when the config leaves it off."""
    if not enabled:
        return frozenset()
    from voicebot.demo_backend.app import load_handlers

    return frozenset(load_handlers())


def check_webhook_urls(plan: Dialplan, path: str | Path, webhooks: Mapping[str, str],
                       demo_backend: bool) -> list[YamlSourceError]:
    """unresolved_webhooks for a dialplan file against a server config's `webhooks` and `demo_backend`."""
    _, lines = load_yaml(path)
    return unresolved_webhooks(plan, lines, str(path), configured=set(webhooks),
                               demo_hooks=demo_hook_names(demo_backend))
