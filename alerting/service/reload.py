"""Reload: reread config, rules, templates and silences; validate all; swap atomically.

SIGHUP (``systemctl reload``) asks for it; the service's main thread runs it between
jobs. Everything is loaded and checked first, outside the jobs' lock: any problem keeps
the running set and is logged as ``file:line:col: message``, one line each. Only then,
under the lock the poll and delivery jobs hold, do the new engine and notifier replace
the old ones. Unchanged rules keep their windows (``Engine.carry_over``); realert state
and baselines come from the store, which every poll already committed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from alerting.config import Config, channel_template_problems, load_config
from alerting.engine.loader import load_rules
from alerting.engine.rule import CompiledRule
from alerting.errors import AlertingError, ConfigError, Location, Problem, ValidationFailed
from alerting.notify.render import check_templates
from alerting.replay_shape import FIRST_EVENTS, export_problem
from alerting.source.files import first_events

__all__ = ["RESTART_SECTIONS", "Loaded", "file_source_problem", "load_all", "needs_restart"]

log = logging.getLogger("alerting.service")

# Sections a running service cannot swap (an open connection, a bound port, a lock file):
# a change is logged and applies at the next restart.
RESTART_SECTIONS = ("source", "state", "server", "logging")


@dataclass(frozen=True)
class Loaded:
    """A validated config with its rules: what a reload swaps in."""

    config: Config
    rules: list[CompiledRule]


def load_all(config_path: str | Path) -> Loaded:
    """Load and check the config, the rules and the templates; ``ValidationFailed`` with
    every problem found (each with its file:line:col) when anything is wrong."""
    problems: list[Problem] = []
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise ValidationFailed(exc.problems) from None
    rules: list[CompiledRule] = []
    try:
        rules = list(
            load_rules([Path(p) for p in config.rules.paths], placeholders=config.placeholders)
        )
    except ValidationFailed as exc:
        problems.extend(exc.problems)
    except AlertingError as exc:
        where = ", ".join(str(p) for p in config.rules.paths)
        problems.append(Problem(Location(where), str(exc)))
    problems.extend(channel_template_problems(config))
    if not problems:
        problems.extend(check_templates(config.templates.path, [r.id for r in rules]))
        problem = file_source_problem(config, rules)
        if problem is not None:
            problems.append(problem)
    if problems:
        raise ValidationFailed(problems)
    return Loaded(config, rules)


def file_source_problem(config: Config, rules: list[CompiledRule]) -> Problem | None:
    """A ``source.kind: file`` export that PowerShell cut below what ``rules`` read, as
    replay refuses it (``replay_shape``); None for any other source."""
    path = config.source.path
    if str(config.source.kind) != "file" or path is None:
        return None
    return export_problem(first_events(path, FIRST_EVENTS), rules, str(path))


def needs_restart(old: Config, new: Config) -> list[str]:
    """The restart-only sections that differ between the running and the new config."""
    return [
        name
        for name in RESTART_SECTIONS
        if getattr(old, name).model_dump() != getattr(new, name).model_dump()
    ]
