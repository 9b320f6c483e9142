"""Authoring commands: `voicebot validate | simulate | test | graph`.

`register(subparsers)` adds them to the main `voicebot` parser; `main(argv)` runs them alone:
    python -m voicebot.dialplan.cli validate dialplans/
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from voicebot.yamlsrc import ConfigErrors, YamlSourceError

__all__ = ["main", "register"]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIALPLANS = REPO_ROOT / "dialplans"
DEFAULT_NLU = REPO_ROOT / "nlu_models"
DEFAULT_CONFIG = REPO_ROOT / "sip_config" / "voicebot.yaml"
DEFAULT_KNOWLEDGE = REPO_ROOT / "knowledge"


def register(subparsers: Any) -> None:
    """Add validate, simulate, test and graph to an argparse subparsers object."""
    validate = subparsers.add_parser("validate", help="check dialplans (and the NLU intents they use)")
    validate.add_argument("paths", nargs="*", type=Path, help=f"files or directories (default {DEFAULT_DIALPLANS})")
    validate.add_argument("--nlu-dir", type=Path, default=DEFAULT_NLU, help="NLU domains directory")
    validate.add_argument("--no-nlu", action="store_true", help="skip the check that intents are trained")
    validate.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                          help="server config whose webhooks: (and demo_backend) must give every webhook a URL "
                               "(default %(default)s)")
    validate.add_argument("--knowledge-dir", type=Path, default=DEFAULT_KNOWLEDGE,
                          help="knowledge articles to check too (default %(default)s)")
    validate.add_argument("--no-knowledge", action="store_true", help="skip the knowledge-base checks")
    from voicebot.compliance.lint import register_lint

    register_lint(validate)
    validate.set_defaults(func=_validate)

    simulate = subparsers.add_parser("simulate", help="talk to a dialplan in text (stdin); #123 sends DTMF")
    simulate.add_argument("dialplan", type=Path)
    simulate.add_argument("--lang", help="call language (default: the dialplan's first)")
    simulate.add_argument("--caller", default="+15550100", help="caller number (ANI)")
    simulate.add_argument("--nlu-dir", type=Path, default=DEFAULT_NLU)
    simulate.add_argument("--no-nlu", action="store_true", help="do not parse text with the NLU")
    simulate.add_argument("-v", "--verbose", action="store_true", help="also show log events")
    simulate.add_argument("--knowledge-dir", type=Path, default=DEFAULT_KNOWLEDGE)
    simulate.set_defaults(func=_simulate)

    test = subparsers.add_parser("test", help="run conversation tests (<name>.tests.yaml) with coverage")
    test.add_argument("paths", nargs="*", type=Path, help=f"test files or directories (default {DEFAULT_DIALPLANS})")
    test.add_argument("--nlu-dir", type=Path, default=DEFAULT_NLU)
    test.add_argument("--no-nlu", action="store_true")
    test.add_argument("--min-coverage", type=float, default=0.0, help="fail below this node coverage (0..1)")
    test.add_argument("--knowledge-dir", type=Path, default=DEFAULT_KNOWLEDGE,
                      help="articles that answer the dialplans' answer: nodes (default %(default)s)")
    test.set_defaults(func=_test)

    graph = subparsers.add_parser("graph", help="draw a dialplan (svg, png, pdf or dot)")
    graph.add_argument("dialplan", type=Path)
    graph.add_argument("-o", "--output", type=Path, required=True)
    graph.add_argument("--no-graphviz", action="store_true", help="use the built-in SVG renderer")
    graph.set_defaults(func=_graph)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voicebot", description="dialplan authoring tools")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


# ------------------------------------------------------------------------------------------- helpers


def _nlu_intents(nlu_dir: Path) -> Any:
    """(domain, lang) -> intents, from voicebot.nlu when it is installed; None otherwise."""
    try:
        from voicebot.nlu.base import load_nlu
    except ImportError:
        return None
    engines: dict[str, Any] = {}

    def intents(domain: str, lang: str) -> set[str]:
        if domain not in engines:
            engines[domain] = load_nlu(nlu_dir / domain)
        return set(engines[domain].intents(lang))

    return intents


def _nlu_for(plan: Any, nlu_dir: Path, disabled: bool) -> Any:
    if disabled or plan.nlu is None or not (nlu_dir / plan.nlu).is_dir():
        return None
    try:
        from voicebot.nlu.base import load_nlu

        return load_nlu(nlu_dir / plan.nlu)
    except Exception as exc:  # noqa: BLE001 - the tools still work with /intent input
        print(f"voicebot: NLU {plan.nlu!r} unavailable ({exc}); use /intent to send intents", file=sys.stderr)
        return None


def _knowledge_for(knowledge_dir: Path) -> Any:
    """plan -> (Answer -> KnowledgeResult) from the articles in `knowledge_dir`, loaded once on first use."""
    loaded: dict[str, Any] = {}

    def loader(plan: Any) -> Any:
        if not any(node.answer is not None for node in plan.nodes.values()):
            return None
        if "kb" not in loaded:
            from voicebot.knowledge.base import load_knowledge

            loaded["kb"] = load_knowledge(knowledge_dir)
        return loaded["kb"].answer

    return loader


def _load(path: Path) -> Any:
    from voicebot.dialplan.loader import load_dialplan

    try:
        return load_dialplan(path)
    except (ConfigErrors, YamlSourceError) as exc:
        print(f"voicebot: {path} is not valid:\n{exc}", file=sys.stderr)
        return None


# ------------------------------------------------------------------------------------------ commands


def _validate(args: argparse.Namespace) -> int:
    from voicebot.dialplan.loader import validate_all

    paths = args.paths or [DEFAULT_DIALPLANS]
    intents = None if args.no_nlu else _nlu_intents(args.nlu_dir)
    report = validate_all(list(paths), None if args.no_nlu else args.nlu_dir, intents)
    from voicebot.compliance.lint import run_lint

    report.errors += run_lint(args, report.plans)
    report.errors += _webhook_url_errors(args.config, report.plans)
    report.errors += _disposition_errors(args.config)
    report.warnings += _deployment_warnings(args)
    articles = 0
    if not args.no_knowledge:
        from voicebot.knowledge.checks import answer_errors
        from voicebot.knowledge.base import check_knowledge

        policies = None if getattr(args, "no_compliance", False) else args.policies
        knowledge = check_knowledge(args.knowledge_dir, policy_dir=policies)
        report.errors += knowledge.errors + knowledge.expired
        report.errors += answer_errors(report.plans, knowledge.articles)
        articles = len(knowledge.articles)
    for warning in report.warnings:
        print(f"warning: {warning}")
    for error in report.errors:
        print(f"error: {error}")
    for path, plan in report.plans.items():
        if not any(e.path == path for e in report.errors):
            print(f"ok: {path} ({plan.dialplan}, {len(plan.nodes)} nodes)")
    if not args.no_knowledge:
        print(f"knowledge: {articles} article(s) in {args.knowledge_dir}")
    print(f"{len(report.plans)} dialplan(s), {len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    return 0 if not report.errors else 1


def _webhook_url_errors(config_path: Path, plans: dict[str, Any]) -> list[YamlSourceError]:
    """Webhooks of the valid plans that the server config gives no URL (nor a demo backend)."""
    from voicebot.config import load_server_config
    from voicebot.dialplan.webhook_urls import check_webhook_urls

    try:
        config = load_server_config(config_path)
    except ConfigErrors as exc:
        return exc.errors
    except YamlSourceError as exc:
        return [exc]
    errors: list[YamlSourceError] = []
    for path, plan in plans.items():
        errors += check_webhook_urls(plan, path, config.webhooks, config.demo_backend)
    return errors


def _deployment_warnings(args: argparse.Namespace) -> list[YamlSourceError]:
    """TLS certificate lifetime and key permissions, trunks carrying finance/healthcare calls without TLS or
    SRTP (voicebot.compliance.deployment); nothing when the config does not load (its errors are reported)."""
    from voicebot.compliance.deployment import deployment_warnings
    from voicebot.compliance.lint import DEFAULT_POLICY_DIR, load_policies
    from voicebot.config import load_server_config
    from voicebot.yamlsrc import load_yaml

    try:
        config = load_server_config(args.config)
        _, lines = load_yaml(args.config)
    except (ConfigErrors, YamlSourceError):
        return []
    try:
        policies = ([] if getattr(args, "no_compliance", False)
                    else load_policies(getattr(args, "policies", DEFAULT_POLICY_DIR)))
    except (ConfigErrors, YamlSourceError):
        policies = []  # the compliance lint reports the broken policy files
    return deployment_warnings(config, lines, str(args.config), policies)


def _disposition_errors(config_path: Path) -> list[YamlSourceError]:
    """Problems (file:line) in the disposition codes the server config names (cases.dispositions_file)."""
    from voicebot.config import load_server_config
    from voicebot.records.dispositions import load_dispositions

    try:
        config = load_server_config(config_path)
        if config.cases.enabled:
            load_dispositions(config.cases.dispositions_file)
    except ConfigErrors as exc:
        return exc.errors
    except YamlSourceError as exc:
        return [exc]
    return []


def _simulate(args: argparse.Namespace) -> int:
    from voicebot.dialplan.events import CallContext
    from voicebot.dialplan.simulate import simulate

    plan = _load(args.dialplan)
    if plan is None:
        return 1
    nlu = _nlu_for(plan, args.nlu_dir, args.no_nlu)
    print(f"simulating {plan.dialplan} — type what the caller says; #123 = DTMF, /intent, !noinput, "
          "!ok {json}, !error, !state, !quit", file=sys.stderr)
    context = CallContext(caller=args.caller, lang=args.lang, channel="simulate", call_id="simulate")
    try:
        knowledge = _knowledge_for(args.knowledge_dir)(plan)
    except (ConfigErrors, YamlSourceError) as exc:
        print(f"voicebot: the knowledge base is not valid:\n{exc}", file=sys.stderr)
        return 1
    simulate(plan, sys.stdin, sys.stdout, context=context, nlu=nlu, verbose=args.verbose,
             prompt=sys.stdin.isatty(), knowledge=knowledge)
    return 0


def _test(args: argparse.Namespace) -> int:
    from voicebot.dialplan.testing import run_test_file

    files: list[Path] = []
    for path in args.paths or [DEFAULT_DIALPLANS]:
        files += sorted(path.glob("*.tests.yaml")) if path.is_dir() else [path]
    if not files:
        print("voicebot: no conversation tests (<name>.tests.yaml) found", file=sys.stderr)
        return 1
    failed = 0
    knowledge = _knowledge_for(args.knowledge_dir)
    for path in files:
        try:
            result = run_test_file(path, nlu_loader=lambda plan: _nlu_for(plan, args.nlu_dir, args.no_nlu),
                                   knowledge_loader=knowledge)
        except (ConfigErrors, YamlSourceError) as exc:
            print(f"error: {exc}")
            failed += 1
            continue
        for case in result.cases:
            print(f"{'PASS' if case.passed else 'FAIL'} {path.name}: {case.name}")
            if case.failure:
                print(f"     {case.failure}")
        cov = result.coverage
        missing = sorted(set(result.dialplan.nodes) - cov.nodes_covered)
        print(f"coverage {result.dialplan.dialplan}: nodes {len(cov.nodes_covered)}/{cov.nodes_total} "
              f"({cov.node_ratio:.0%}), transitions {len(cov.edges_covered)}/{len(cov.edges_total)} "
              f"({cov.edge_ratio:.0%})" + (f"; not visited: {', '.join(missing)}" if missing else ""))
        failed += sum(not case.passed for case in result.cases)
        if cov.node_ratio < args.min_coverage:
            print(f"FAIL coverage {cov.node_ratio:.0%} is below --min-coverage {args.min_coverage:.0%}")
            failed += 1
    print("all tests passed" if not failed else f"{failed} failure(s)")
    return 0 if not failed else 1


def _graph(args: argparse.Namespace) -> int:
    from voicebot.dialplan.graph_render import render_graph

    plan = _load(args.dialplan)
    if plan is None:
        return 1
    try:
        renderer = render_graph(plan, args.output, use_dot=not args.no_graphviz)
    except (ValueError, OSError, subprocess.SubprocessError) as exc:
        print(f"voicebot: cannot draw {args.dialplan}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({renderer})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
