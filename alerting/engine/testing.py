"""Rule tests: ``run_rule_tests`` runs the ``tests:`` cases (``alerting test`` is commands/test.py).

Each ``tests:`` case runs on a fresh ``Engine`` holding only its rule (enabled for the
test even when the rule is disabled), with its events in event-time order — the order
``replay`` and the service use — so a passing test means the same events alert the same
way in production.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerting import jsonutil
from alerting.alert import Alert
from alerting.engine.engine import Engine
from alerting.engine.loader import resolve_events_file
from alerting.engine.rule import (
    AlertExpectation,
    CompiledRule,
    RuleTestCase,
    TestEventError,
    build_test_events,
)
from alerting.errors import AlertingError
from alerting.events import Event, sort_key
from alerting.yamlfile import suggest

MAX_SHOWN_ALERTS = 5


@dataclass(slots=True)
class TestResult:
    """One test's outcome; ``passed`` is ``None`` for a rule that has no tests."""

    rule: str
    name: str
    passed: bool | None
    problems: list[str] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    disabled: bool = False

    __test__ = False  # not a pytest class


def select_rules(rules: Sequence[CompiledRule], only: Sequence[str] | None) -> list[CompiledRule]:
    """The rules named in ``only`` (all when empty); unknown ids raise with did-you-mean."""
    if not only:
        return list(rules)
    by_id = {r.id: r for r in rules}
    unknown = [rid for rid in only if rid not in by_id]
    if unknown:
        rid = unknown[0]
        hint = suggest(rid, list(by_id)) or (
            f" (known: {', '.join(sorted(by_id))})" if len(by_id) <= 20 else ""
        )
        raise AlertingError(f"unknown rule id {rid!r}{hint}")
    return [by_id[rid] for rid in dict.fromkeys(only)]


def run_rule_tests(
    rules: Sequence[CompiledRule], only: Sequence[str] | None = None
) -> list[TestResult]:
    """Run the inline tests of ``rules`` (or only those ids); one result per test, and
    one for a rule without tests (unless a correlation uses it: tested through that)."""
    results: list[TestResult] = []
    for rule in select_rules(rules, only):
        if not rule.tests and rule.correlated_by:
            continue  # tested through the correlation rules that use it
        if not rule.tests:
            results.append(TestResult(rule.id, "", None, disabled=not rule.enabled))
            continue
        for case in rule.tests:
            results.append(run_case(rule, case))
    return results


def case_events(rule: CompiledRule, case: RuleTestCase) -> list[Event]:
    """The case's events, expanded and in event-time order; raises ``TestEventError``."""
    if isinstance(case.events, list):
        events = build_test_events(case.events)
    else:
        path = resolve_events_file(case.events, rule.path)
        if path is None:
            raise TestEventError(f"events file {case.events!r} not found")
        events = build_test_events(_read_entries(path))
    events.sort(key=sort_key)
    return events


def _read_entries(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TestEventError(f"cannot read events file {path}: {exc}") from None
    if text.lstrip().startswith("["):
        try:
            data = jsonutil.loads(text)
        except jsonutil.JSONDecodeError as exc:
            raise TestEventError(f"{path}: invalid JSON: {exc}") from None
        if not isinstance(data, list):
            raise TestEventError(f"{path}: expected a JSON array of events")
        return data
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entries.append(jsonutil.loads(line))
        except jsonutil.JSONDecodeError as exc:
            raise TestEventError(f"{path}:{number}: invalid JSON: {exc}") from None
    return entries


def run_case(rule: CompiledRule, case: RuleTestCase) -> TestResult:
    """Run one test case on a fresh engine and compare what came out with ``expect``."""
    result = TestResult(rule.id, case.name, False, disabled=not rule.enabled)
    try:
        events = case_events(rule, case)
    except TestEventError as exc:
        where = f"entry {exc.index + 1}: " if exc.index is not None else ""
        result.problems.append(f"bad test events: {where}{exc.message}")
        return result
    engine = Engine([dataclasses.replace(rule, enabled=True)])
    alerts = engine.process_many(events)
    result.alerts = alerts
    result.problems = compare(alerts, case)
    result.passed = not result.problems
    return result


def compare(alerts: list[Alert], case: RuleTestCase) -> list[str]:
    """Differences between ``alerts`` and the case's expectations, as readable lines."""
    want_count, checks = case.expect.expectations()
    problems: list[str] = []
    if len(alerts) != want_count:
        noun = "alert" if want_count == 1 else "alerts"
        problems.append(f"expected {want_count} {noun}, got {len(alerts)}")
    for i, check in enumerate(checks):
        if i >= len(alerts):
            break
        problems.extend(f"alert {i + 1}: {p}" for p in _check(alerts[i], check))
    if problems:
        problems.extend(_describe(alerts))
    return problems


def _check(alert: Alert, check: AlertExpectation) -> list[str]:
    out: list[str] = []
    if check.group is not None:
        for key, want in check.group.items():
            got = alert.group.get(key, "<no such group field>")
            if got != want:
                out.append(f"group[{key!r}]: expected {want!r}, got {got!r}")
    if check.count is not None and alert.count != check.count:
        out.append(f"count: expected {check.count}, got {alert.count}")
    if check.summary_contains is not None and check.summary_contains not in alert.summary:
        out.append(f"summary does not contain {check.summary_contains!r}: {alert.summary!r}")
    if check.suppressed is not None and alert.suppressed != check.suppressed:
        out.append(f"suppressed: expected {check.suppressed}, got {alert.suppressed}")
    return out


def _describe(alerts: list[Alert]) -> list[str]:
    lines = []
    for i, alert in enumerate(alerts[:MAX_SHOWN_ALERTS]):
        lines.append(
            f"  got alert {i + 1}: group {jsonutil.dumps(alert.group)}, count {alert.count}, "
            f"at {alert.last_event_time}, summary {alert.summary!r}"
        )
    if len(alerts) > MAX_SHOWN_ALERTS:
        lines.append(f"  ... and {len(alerts) - MAX_SHOWN_ALERTS} more")
    return lines
