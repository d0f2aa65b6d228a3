"""``alerting test``: run the rules' inline tests and print the table (``engine.testing``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from alerting.commands.common import placeholders, rules_dirs
from alerting.engine.loader import load_rules
from alerting.engine.testing import TestResult, run_rule_tests
from alerting.notify.preview import MessagePreview


def format_results(results: list[TestResult]) -> str:
    """The table printed by ``alerting test``, with failure details and a total line."""
    rule_w = max([len("RULE"), *(len(r.rule) for r in results)])
    name_w = min(60, max([len("TEST"), *(len(r.name or "(no tests)") for r in results)]))
    lines = [f"{'RULE':<{rule_w}}  {'TEST':<{name_w}}  RESULT"]
    for r in results:
        status = "PASS" if r.passed else ("FAIL" if r.passed is False else "WARN")
        name = r.name or "(no tests)"
        if r.disabled:
            status += " (rule disabled)"
        lines.append(f"{r.rule:<{rule_w}}  {name[:name_w]:<{name_w}}  {status}")
        for problem in r.problems:
            lines.append(f"    {problem}")
    passed = sum(1 for r in results if r.passed)
    failed = sum(1 for r in results if r.passed is False)
    untested = [r.rule for r in results if r.passed is None]
    total = f"{passed + failed} tests: {passed} passed, {failed} failed"
    if untested:
        total += f"; warning: {len(untested)} rule(s) without tests: {', '.join(untested)}"
    lines.append(total)
    return "\n".join(lines)


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``alerting test``: 0 when every test passes, 1 otherwise."""
    templates = Path(getattr(args, "templates", None) or "templates")
    return run(
        rules_dirs(args), args.rule_ids or None, out, templates, placeholders=placeholders(args)
    )


def run(
    dirs: list[Path],
    only: list[str] | None,
    out: TextIO | None = None,
    templates: Path = Path("templates"),
    *,
    placeholders: dict[str, list[str]] | None = None,
) -> int:
    """Run the tests of the rules in ``dirs`` (``only`` these ids); 1 when one fails.

    ``expect.rendered`` checks render with the notification templates in ``templates``.
    """
    stream = out or sys.stdout
    rules = load_rules(dirs, placeholders=placeholders)
    results = run_rule_tests(rules, only, render=MessagePreview(templates))
    stream.write(format_results(results) + "\n")
    return 1 if any(r.passed is False for r in results) else 0
