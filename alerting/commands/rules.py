"""``alerting rules list``: every loaded rule and the channels its alerts reach.

The answer to "what is running and where does it go" without reading YAML: id, severity,
aggregation, enabled, and the channels from the config's routes (``name?`` when a route
only takes some groups). Only names are read from the config, so no secret is needed.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO

from alerting.commands.common import present_config, rules_dirs
from alerting.engine.loader import load_rules
from alerting.engine.rule import CompiledRule, CorrelationModel
from alerting.notify.escape import terminal_escape
from alerting.notify.routing import reachable_channels
from alerting.notify.settings import RouteConfig


def _aggregation(rule: CompiledRule) -> str:
    model = rule.model
    if isinstance(model, CorrelationModel):
        return f"correlation:{model.correlation.type}"
    keys = model.aggregation_keys()
    return keys[0] if keys else "none"  # every matching event alerts


def format_rules(rules: list[CompiledRule], routes: list[RouteConfig] | None) -> str:
    header = ("ID", "SEVERITY", "AGGREGATION", "ENABLED", "CHANNELS")
    rows = [header]
    for rule in sorted(rules, key=lambda r: r.id):
        if routes is None:
            channels = "(no config)"
        else:
            reached = reachable_channels(routes, rule.id, rule.severity, rule.tags)
            channels = ", ".join(f"{n}?" if some else n for n, some in reached) or "none"
        rows.append(
            (
                terminal_escape(rule.id),
                rule.severity,
                _aggregation(rule),
                "yes" if rule.enabled else "no",
                terminal_escape(channels),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    ]
    enabled = sum(1 for r in rules if r.enabled)
    lines.append(f"{len(rules)} rules, {enabled} enabled; name? = only some groups reach it")
    return "\n".join(line.rstrip() for line in lines)


def main(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """``alerting rules list [--rules DIR]``."""
    stream = out or sys.stdout
    config = present_config(args)
    placeholders = config.placeholders if config is not None else None
    rules = list(load_rules(rules_dirs(args), placeholders=placeholders))
    stream.write(format_rules(rules, None if config is None else list(config.routes)) + "\n")
    return 0
