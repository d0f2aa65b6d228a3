"""``alerting validate [--config F] [--rules DIR]``: check config, rules and templates.

Everything is checked in one run, so a user fixes all mistakes at once: a broken config
does not stop the rules from being checked. Errors go to stderr as
``file:line:col: message`` (exit 1); on success a short summary goes to stdout, followed
by warnings (expired silences, unreachable routes, rule names DI does not know, summaries
reading a group key the rule lacks, tests matching no selection) and notes (unused
channels), which do not fail the run unless ``--strict``.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from alerting.clock import Clock, SystemClock
from alerting.commands.common import DEFAULT_CONFIG, config_path
from alerting.config import (
    Config,
    channel_template_problems,
    config_notes,
    config_warnings,
    load_config,
)
from alerting.engine.lint import rule_document, rule_warnings
from alerting.engine.loader import load_rules
from alerting.errors import AlertingError, ConfigError, Location, Problem, ValidationFailed
from alerting.notify.render import check_templates
from alerting.yamlfile import YamlDocument, load_yaml_all, suggest


@dataclass
class Report:
    """The outcome of one validation run."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def check(
    config_path: str | Path | None,
    rule_dirs: Sequence[str | Path] | None = None,
    *,
    now: datetime | None = None,
) -> Report:
    """Validate the config, then the rules, then the templates; never raises for bad input.

    ``rule_dirs`` overrides ``rules.paths`` from the config (the ``--rules`` flag);
    ``config_path`` ``None`` (``--rules`` without a config) checks the rules alone.
    """
    now = now or datetime.now(UTC)
    report = Report()
    if config_path is None:
        return _rules_only([Path(p) for p in rule_dirs or ["rules"]], report)
    config: Config | None = None
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        report.errors.extend(exc.problems)

    rule_ids: list[str] | None = None
    paths: list[Path] = []
    if rule_dirs:
        paths = [Path(p) for p in rule_dirs]
    elif config is not None:
        paths = list(config.rules.paths)
    elif Path(config_path).is_file():
        # Same default as the config model: ``rules`` beside the config file.
        paths = [Path(config_path).absolute().parent / "rules"]
    if paths:
        rules = _check_rules(paths, report, config.placeholders if config is not None else None)
        rule_ids = [str(r.id) for r in rules] if rules is not None else None

    if config is None:
        unchecked = "templates" if paths else "rules and templates"
        report.notes.append(
            Problem(Location(str(config_path)), f"{unchecked} not checked: fix the config first")
        )
        return report

    report.warnings.extend(config_warnings(config, now))
    report.notes.extend(config_notes(config))
    report.errors.extend(channel_template_problems(config))
    if rule_ids is not None:
        report.warnings.extend(_rule_pattern_warnings(config, rule_ids))
    templates = _check_templates(config, rule_ids, report)

    if report.ok:
        # A valid config has rules.paths, so no errors means the rules and templates loaded.
        assert rule_ids is not None
        assert templates is not None
        active = len(config.silences) - len(config.expired_silences(now))
        report.summary = [
            f"config ok: {config.path} (source {config.source.kind}, state {config.state.path})",
            f"rules: {len(rule_ids)} ok in {', '.join(str(p) for p in paths)}",
            f"templates: {templates} ok in {config.templates.path}",
            f"channels: {', '.join(config.channels) or 'none'}; routes: {len(config.routes)}; "
            f"silences: {active} active",
        ]
    return report


def _rules_only(paths: list[Path], report: Report) -> Report:
    """``validate --rules DIR`` without a config file: check the rules alone."""
    rules = _check_rules(paths, report)
    if rules is not None:
        report.summary = [
            f"rules: {len(rules)} ok in {', '.join(str(p) for p in paths)}",
            f"config and templates not checked: no {DEFAULT_CONFIG} here "
            "(pass --config to check them too)",
        ]
    return report


def _check_rules(
    paths: Sequence[Path], report: Report, placeholders: dict[str, list[str]] | None = None
) -> list[Any] | None:
    """Load every rule; ``None`` when the rules could not be loaded."""
    try:
        rules = list(load_rules(paths, placeholders=placeholders))
    except ValidationFailed as exc:
        report.errors.extend(exc.problems)
        return None
    except AlertingError as exc:
        report.errors.append(Problem(Location(", ".join(str(p) for p in paths)), str(exc)))
        return None
    files: dict[Path, list[YamlDocument]] = {}
    for rule in rules:
        report.notes.extend(rule.notes)
        if rule.path not in files:
            try:
                files[rule.path] = load_yaml_all(rule.path)
            except ValidationFailed:  # changed since it loaded a moment ago: nothing to add
                files[rule.path] = []
        doc = rule_document(rule, files[rule.path])
        if doc is not None:
            report.warnings.extend(rule_warnings(rule, doc))
    return rules


def _check_templates(config: Config, rule_ids: list[str] | None, report: Report) -> int | None:
    """Compile and test-render the templates; the number checked, or None if skipped."""
    if rule_ids is None:
        # Per-rule overrides are checked against the rule ids, so the rules come first.
        report.notes.append(
            Problem(Location(str(config.templates.path)), "templates not checked: no rules loaded")
        )
        return None
    report.errors.extend(check_templates(config.templates.path, rule_ids))
    root = config.templates.path
    return sum(1 for p in root.rglob("*.j2") if p.is_file()) if root.is_dir() else 0


def _rule_pattern_warnings(config: Config, rule_ids: list[str]) -> list[Problem]:
    """Routes and silences whose ``rule`` pattern matches no loaded rule (a typo?)."""
    warnings = []
    matches = [("routes", i, r.match) for i, r in enumerate(config.routes)]
    matches += [("silences", i, s.match) for i, s in enumerate(config.silences)]
    for section, i, match in matches:
        for j, pattern in enumerate(match.rule):
            if any(fnmatch.fnmatchcase(r, pattern) for r in rule_ids):
                continue
            warnings.append(
                Problem(
                    config.locate(section, i, "match", "rule", j),
                    f"{section}.{i}.match.rule: {pattern!r} matches no rule"
                    f"{suggest(pattern, rule_ids)}",
                )
            )
    return warnings


def print_report(report: Report, out: TextIO, err: TextIO) -> None:
    for problem in report.errors:
        print(problem, file=err)
    for line in report.summary:
        print(line, file=out)
    for problem in report.warnings:
        print(f"{problem.location}: warning: {problem.message}", file=out)
    for problem in report.notes:
        print(f"{problem.location}: note: {problem.message}", file=out)
    if report.errors:
        count = len(report.errors)
        print(f"{count} problem{'s' if count != 1 else ''} found", file=err)


def main(args: argparse.Namespace, *, clock: Clock | None = None) -> int:
    """``alerting validate``: exit 0 when everything is valid, 1 otherwise (``--strict``:
    warnings count as failures too, for CI that wants a clean pack)."""
    clock = clock or SystemClock()
    path: str | None = config_path(args)
    if args.config is None and args.rules and not Path(DEFAULT_CONFIG).exists():
        path = None  # `validate --rules DIR` with no config around: check the rules alone
    report = check(path, args.rules, now=datetime.fromtimestamp(clock.time(), tz=UTC))
    out, err = sys.stdout, sys.stderr
    print_report(report, out, err)
    if getattr(args, "strict", False) and report.warnings:
        count = len(report.warnings)
        print(
            f"{count} warning{'s' if count != 1 else ''} (--strict): fix them or drop --strict",
            file=err,
        )
        return 1
    return 0 if report.ok else 1
