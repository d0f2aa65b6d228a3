"""What DI events are known to contain: event types and field paths, shipped as data.

``di_schema.json`` beside this file is built by ``tools/build_di_schema.py`` from the
DI API reference and vendor-captured events. ``alerting validate`` uses it to warn about
names DI does not send (a typo in a field path matches nothing, silently, forever); it
is advice, never a reason to refuse a rule, since DI adds event types and fields.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from alerting.engine.fields import jsonpath_parts
from alerting.yamlfile import suggest

SCHEMA_FILE = Path(__file__).with_name("di_schema.json")


@dataclass(frozen=True)
class DiSchema:
    event_types: frozenset[str]
    event_type_patterns: tuple[str, ...]  # ``passwordmanager_*`` families
    fields: frozenset[str]  # dotted paths; array elements' keys as if the array were one
    open_prefixes: tuple[str, ...]  # free-form objects: anything below them is accepted

    def knows_event_type(self, value: str) -> bool:
        value = value.lower()
        return value in self.event_types or any(
            fnmatch.fnmatchcase(value, p) for p in self.event_type_patterns
        )

    def matches_some_event_type(self, pattern: str) -> bool:
        """A Sigma wildcard value (``*_login_attempt``) that some known type matches."""
        pattern = pattern.lower()
        return any(fnmatch.fnmatchcase(t, pattern) for t in self.event_types) or any(
            p.rstrip("*") and pattern.startswith(p.rstrip("*")) for p in self.event_type_patterns
        )

    @cached_property
    def object_paths(self) -> frozenset[str]:
        """The paths DI sends as an object (or a list of them): those with known fields
        below them."""
        parents = {f.rsplit(".", 1)[0] for f in self.fields if "." in f}
        return frozenset(p for p in parents if p in self.fields)

    def knows_field(self, path: str) -> bool:
        """A dotted path or simple JSONPath DI is known to send (or an object holding one)."""
        dotted = _dotted(path)
        if dotted is None:
            return True  # a JSONPath with filters: nothing to compare it with
        if dotted in self.fields:
            return True
        if any(dotted == p or dotted.startswith(p + ".") for p in self.open_prefixes):
            return True
        return any(f.startswith(dotted + ".") for f in self.fields)

    def field_hint(self, path: str) -> str:
        """`` (did you mean 'x'?)`` from the known fields, or ``""``."""
        dotted = _dotted(path) or path
        return suggest(dotted, set(self.fields))

    def event_type_hint(self, value: str) -> str:
        return suggest(value.lower(), set(self.event_types))


def _dotted(path: str) -> str | None:
    if not path.startswith("$"):
        return path
    parts = jsonpath_parts(path)
    return ".".join(parts) if parts else None


@lru_cache(maxsize=1)
def di_schema() -> DiSchema:
    data = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return DiSchema(
        event_types=frozenset(data["event_types"]),
        event_type_patterns=tuple(data["event_type_patterns"]),
        fields=frozenset(data["fields"]),
        open_prefixes=tuple(data["open_prefixes"]),
    )
