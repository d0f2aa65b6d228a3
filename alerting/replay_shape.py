"""Exports whose nested objects came out as text: PowerShell's ``ConvertTo-Json -Depth``.

JumpCloud's PowerShell module returns events as objects (``Get-JCEvent``), and
``ConvertTo-Json`` writes every object nested deeper than its ``-Depth`` (default 2) as
its text: ``@{from=; to=}``, or a .NET type name such as ``System.Object[]``. Such a file
parses and replays, and a rule that reads below the cut (``association.connection.from.
name``) never matches: a backtest that reports no alerts for the wrong reason. So a
replay looks at the input's first events before it starts: where a field DI sends as an
object holds such text, the export was cut at that field's depth, and a rule reading
deeper than that makes the replay refuse the input, naming the rule and the fix (and
the service its ``source.kind: file``, at start-up and on a reload).

Only text that looks like PowerShell's counts: a field DI usually sends as an object
may be text in an event type nobody has sampled, and that is no reason to refuse a file.
The cut is the same for every branch of every event, so any event with deep enough
objects (every portal login has ``auth_context.auth_methods``) shows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from alerting.engine.reads import paths_read
from alerting.engine.rule import CompiledRule
from alerting.engine.schema import di_schema
from alerting.errors import AlertingError, Location, Problem
from alerting.events import Event

FIRST_EVENTS = 256
"""How many of the input's first events are looked at: about 5 ms, read and checked."""

# How ConvertTo-Json spells an object past its depth: a PSCustomObject's ``@{k=v; ...}``
# (what ConvertFrom-Json and Get-JCEvent give), or a .NET type name (a hashtable, an array).
_POWERSHELL_TEXT = re.compile(r"@\{.*\}|System\.[\w.`]+(?:\[\])?", re.DOTALL)


class TruncatedExportError(AlertingError):
    """The input's nested objects were written as text, deeper than a rule reads."""


def check_export(events: Iterable[Event], rules: Sequence[CompiledRule], name: str) -> None:
    """Raise ``TruncatedExportError`` with ``export_problem``'s line, when there is one."""
    problem = export_problem(events, rules, name)
    if problem is not None:
        raise TruncatedExportError(str(problem))


def export_problem(
    events: Iterable[Event], rules: Sequence[CompiledRule], name: str
) -> Problem | None:
    """The problem, naming the event, the field, the rule and the fix, when ``events``
    (the input's first, whole) show objects cut to text at a depth some rule reads
    below; None when they do not."""
    cut = _cut(events)
    if cut is None:
        return None
    n, event_id, field, text = cut
    depth = field.count(".") + 1
    for rule in rules:
        for path in paths_read(rule):
            if path.count(".") + 1 > depth:
                shown = text if len(text) <= 60 else text[:57] + "..."
                shown_id = event_id if event_id.isprintable() else repr(event_id)
                return Problem(
                    Location(name),
                    f"event {n} (id {shown_id}): field {field!r} is the text {shown!r}, not "
                    "an object: PowerShell's ConvertTo-Json writes objects nested deeper than "
                    f"its -Depth (default 2) that way, and rule {rule.id} reads {path}, deeper "
                    "than this export kept, so it would never match; export again with "
                    "`ConvertTo-Json -Depth 100`, or with `alerting export`",
                )
    return None


def _cut(events: Iterable[Event]) -> tuple[int, str, str, str] | None:
    """(event number, id, field, text) of the shallowest DI object held as PowerShell's
    text among ``events``; None when there is none."""
    objects = sorted(di_schema().object_paths, key=lambda p: (p.count("."), p))
    found: tuple[int, str, str, str] | None = None
    for n, event in enumerate(events, 1):
        for field in objects:
            if found is not None and field.count(".") >= found[2].count("."):
                break
            for text in _texts_at(event.raw, field.split(".")):
                if _POWERSHELL_TEXT.fullmatch(text):
                    found = (n, event.id, field, text)
                    break
    return found


def _texts_at(value: Any, parts: list[str]) -> Iterator[str]:
    """The text values at ``parts`` below ``value``, through objects and lists (DI's
    lists hold objects: ``changes``, ``policies_applied``)."""
    if isinstance(value, list):
        for item in value:
            yield from _texts_at(item, parts)
    elif not parts:
        if isinstance(value, str):
            yield value
    elif isinstance(value, dict) and parts[0] in value:
        yield from _texts_at(value[parts[0]], parts[1:])
