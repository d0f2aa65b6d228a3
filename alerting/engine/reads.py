"""Which top-level event fields the rules read: all a replay needs to decode of an event.

A DI event is ~1 KB of JSON, and most of it (user agent, auth context, organization)
no rule looks at. Decoding only the fields the rules read is half the cost of a full
parse, so the replay asks the engine for them (``Engine.fields_read``) and the reader
builds just those; alerts still show whole events (``Event.complete``).

The answer is conservative: a path whose first field cannot be known (JSONPath recursive
descent or a filter at the root) means "everything", and so does anything not
understood.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from alerting.engine.fields import jsonpath_parts
from alerting.engine.rule import CompiledRule

# $.name or $['name'] / $["name"] at the start of a JSONPath: its first field is known.
_JSONPATH_FIRST = re.compile(r"""\$(?:\.([A-Za-z_@][\w@-]*)|\[(['"])(.+?)\2\])""")


def first_field(path: str) -> str | None:
    """The top-level field a field path starts at; None when it may start at any field."""
    if not path.startswith("$"):
        return path.split(".", 1)[0].strip()
    m = _JSONPATH_FIRST.match(path)
    if m is None:
        return None
    return m.group(1) or m.group(3)


def _detection_entries(
    detections: Iterable[dict[str, Any]],
) -> Iterator[tuple[str, str, Any]]:
    """(field path, modifiers, value) of every entry of every selection. A keyword
    search yields the field ``""`` (it reads every field); ``fieldref`` yields the
    field it compares with too."""
    for detection in detections:
        for name, body in detection.items():
            if name in ("condition", "rules"):
                continue
            for mapping in body if isinstance(body, list) else [body]:
                if not isinstance(mapping, dict):
                    yield "", "", mapping  # a keyword
                    continue
                for key, value in mapping.items():
                    field, _, mods = str(key).partition("|")
                    yield field.strip(), mods, value
                    if "fieldref" in mods.split("|"):
                        for other in value if isinstance(value, list) else [value]:
                            yield str(other), "fieldref", None


def _detection_paths(detections: Iterable[dict[str, Any]]) -> Iterator[str]:
    return (field for field, _mods, _value in _detection_entries(detections))


def _first_fields(paths: Iterable[str]) -> set[str] | None:
    fields: set[str] = set()
    for path in paths:
        first = first_field(path)
        if not first:
            return None
        fields.add(first)
    return fields


def _aggregation_paths(rule: CompiledRule) -> Iterator[str]:
    yield from (path for path, _getter in rule.group_by)
    spec = rule.aggregation
    for attr in ("field", "latitude", "longitude"):
        value = getattr(spec, attr, None)
        if isinstance(value, str):
            yield value


_IDENTITY = frozenset({"timestamp", "id", "event_type"})


def condition_fields(rules: Iterable[CompiledRule]) -> frozenset[str] | None:
    """The top-level fields the rules' conditions read (their detection selections,
    sequence steps included), or None when they may read any field. An event decoded in
    just these fields gets the same verdict from every condition as the whole event."""
    fields = set(_IDENTITY)
    for rule in rules:
        found = _first_fields(_detection_paths(rule.detections))
        if found is None:
            return None
        fields |= found
    return frozenset(fields)


def fields_read(rules: Iterable[CompiledRule]) -> frozenset[str] | None:
    """The top-level fields the rules read at all, or None when they may read any field:
    conditions, groups, aggregation fields, and what windows keep for a summary.

    A summary reads window events through what the windows keep of them
    (``CompiledRule.held_paths``, projected from the event as the engine saw it), so
    those count; a summary that needs whole events gets them from the event's JSON,
    not from what the engine decoded.
    """
    rules = list(rules)
    fields = condition_fields(rules)
    if fields is None:
        return None
    out = set(fields)
    for rule in rules:
        found = _first_fields(_aggregation_paths(rule))
        if found is None:
            return None
        out |= found
        out.update(parts[0] for parts in rule.held_paths if parts)
    return frozenset(out)


def paths_read(rule: CompiledRule) -> Iterator[str]:
    """The dotted field paths ``rule`` reads: its conditions, groups, aggregation fields
    and what its summary keeps of held events (a JSONPath as its names, when simple;
    keyword searches and other JSONPaths, which name no path, are left out)."""
    for path in (*_detection_paths(rule.detections), *_aggregation_paths(rule)):
        if path.startswith("$"):
            parts = jsonpath_parts(path)
            if parts:
                yield ".".join(parts)
        elif path:
            yield path
    yield from (".".join(parts) for parts in rule.held_paths if parts)


def flag_fields(rules: Iterable[CompiledRule]) -> tuple[str, ...]:
    """Top-level fields that every condition entry on them tests against plain booleans
    (``success: false``), sorted. Their values are few, and a null one decides those
    entries as an absent one does, so the engine can partly evaluate each rule's
    condition per combination of their values, as it does per event type."""
    flags: set[str] = set()
    other: set[str] = set()
    for rule in rules:
        for field, mods, value in _detection_entries(rule.detections):
            values = value if isinstance(value, list) else [value]
            plain = not mods and bool(values) and all(isinstance(v, bool) for v in values)
            (flags if plain else other).add(field)
    return tuple(sorted(f for f in flags - other if "." not in f and not f.startswith("$")))
