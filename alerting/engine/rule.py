"""The rule file model (pydantic) and the compiled rule the engine runs.

The model checks shape and types with located errors (unknown keys get "did you mean");
the loader adds the semantic checks (selections, condition, paths, templates) and builds
a ``CompiledRule``: everything precompiled so the engine does no parsing per event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from jinja2 import Template
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alerting.durations import NS, Duration, parse_duration_ns, td_ns
from alerting.engine.fields import Getter
from alerting.engine.matchers import Predicate, Specializer
from alerting.engine.types import (
    AggregationSpec,
    DistinctSpec,
    NewValueSpec,
    SequenceSpec,
    ThresholdSpec,
    TravelSpec,
)
from alerting.errors import EventError, Problem
from alerting.events import Event, format_timestamp, parse_timestamp
from alerting.yamlfile import one_or_many

RULE_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
AGGREGATION_KEYS = ("threshold", "distinct", "new_value", "travel", "sequence")

# Rule tests: timestamps for events that carry none start here and advance 1s per entry.
TEST_BASE_NS = parse_timestamp("2026-01-05T09:00:00Z")
TEST_STEP_NS = NS
MAX_TEST_EVENTS = 100_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertExpectation(_Model):
    """What one expected alert must look like; every key given is checked."""

    group: dict[str, Any] | None = None
    count: int | None = Field(default=None, ge=1)
    summary_contains: str | None = None
    suppressed: int | None = Field(default=None, ge=0)


class Expect(_Model):
    """``alerts: N`` (+ checks on the first alert) or ``alerts: [{...}, ...]``."""

    alerts: int | list[AlertExpectation]
    group: dict[str, Any] | None = None
    count: int | None = Field(default=None, ge=1)
    summary_contains: str | None = None
    suppressed: int | None = Field(default=None, ge=0)

    @field_validator("alerts")
    @classmethod
    def _non_negative(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 0:
            raise ValueError("alerts must be 0 or more")
        return value

    def expectations(self) -> tuple[int, list[AlertExpectation]]:
        """(expected alert count, checks for the first alerts in order)."""
        if isinstance(self.alerts, list):
            return len(self.alerts), list(self.alerts)
        first = AlertExpectation(
            group=self.group,
            count=self.count,
            summary_contains=self.summary_contains,
            suppressed=self.suppressed,
        )
        has_checks = any(
            v is not None for v in (self.group, self.count, self.summary_contains, self.suppressed)
        )
        return self.alerts, [first] if has_checks else []


class RuleTestCase(_Model):
    """One inline test: events (a file path or a list) and what must come out."""

    name: str = Field(min_length=1)
    events: str | list[Any]
    expect: Expect


class RuleModel(_Model):
    """The YAML rule file, as written by a rule author."""

    id: str
    title: str = Field(min_length=1)
    description: str = ""
    severity: Literal["info", "low", "medium", "high", "critical"]
    tags: list[str] = Field(default_factory=list)
    author: str | None = None
    references: list[str] = Field(default_factory=list)
    falsepositives: list[str] = Field(default_factory=list)
    enabled: bool = True
    detection: dict[str, Any]
    threshold: ThresholdSpec | None = None
    distinct: DistinctSpec | None = None
    new_value: NewValueSpec | None = None
    travel: TravelSpec | None = None
    sequence: SequenceSpec | None = None
    # Group key for rules without an aggregation (realert then applies per group).
    by: list[str] = Field(default_factory=list)
    realert: Duration = timedelta(0)
    summary: str | None = None
    fields: list[str] = Field(default_factory=list)
    tests: list[RuleTestCase] = Field(default_factory=list)

    _by = field_validator("by", mode="before")(one_or_many)

    @field_validator("id")
    @classmethod
    def _kebab(cls, value: str) -> str:
        if not RULE_ID.fullmatch(value):
            raise ValueError(
                f"rule id {value!r} must be kebab-case (lower-case letters, digits and "
                "single dashes), e.g. failed-login-burst"
            )
        return value

    def aggregation_keys(self) -> list[str]:
        return [k for k in AGGREGATION_KEYS if getattr(self, k) is not None]

    def aggregation(self) -> AggregationSpec | None:
        for key in AGGREGATION_KEYS:
            spec = getattr(self, key)
            if spec is not None:
                return spec
        return None


@dataclass(slots=True)
class CompiledRule:
    """A loaded rule: the model plus every precompiled piece the engine needs."""

    id: str
    title: str
    severity: str
    description: str
    tags: list[str]
    enabled: bool
    path: Path
    model: RuleModel
    condition: Predicate
    condition_text: str
    event_types: frozenset[str] | None  # the index keys; None = catch-all
    selections: dict[str, Predicate]
    group_by: list[tuple[str, Getter]]
    aggregation: AggregationSpec | None
    realert_ns: int
    summary: Template | None
    step_predicates: tuple[Predicate, ...] = ()
    # The condition partly evaluated for known top-level field values (the engine's
    # plans): True/False when that decides it, else what is left to check. None: no
    # shortcut.
    specialize: Specializer | None = None
    fields: list[str] = field(default_factory=list)
    tests: list[RuleTestCase] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    # What the summary (alerting.engine.held.summary_needs) and the aggregation's details
    # (travel's places) read of held window events: the fields to keep, as keys from the
    # event root, or every event in full.
    held_paths: tuple[tuple[str, ...], ...] = ()
    hold_full: bool = False

    @property
    def window_ns(self) -> int:
        """The longest stretch of event time this rule's aggregation looks back over."""
        within = getattr(self.aggregation, "within", None)
        return td_ns(within) if isinstance(within, timedelta) else 0


# --------------------------------------------------------------------------- test events

_WRAPPER_KEYS = frozenset({"event", "repeat", "every", "offset"})


class TestEventError(ValueError):
    """A test's events cannot be built; ``index`` is the entry (or line) at fault."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


def is_wrapper(entry: Any) -> bool:
    """``{event: {...}, repeat: N, every: 30s, offset: 2m}`` rather than a raw event."""
    return isinstance(entry, dict) and "event" in entry and set(entry) <= _WRAPPER_KEYS


def build_test_events(entries: list[Any], *, id_prefix: str = "evt") -> list[Event]:
    """Expand inline entries into events, filling in timestamps and ids.

    An entry without a timestamp gets ``TEST_BASE_NS + offset`` (when ``offset`` is given)
    or the previous entry's time + 1s; ``repeat: N`` copies it N times ``every`` apart
    (default 1s). Events without an ``id`` get ``evt-0001``-style ids.
    """
    events: list[Event] = []
    cursor = TEST_BASE_NS - TEST_STEP_NS
    serial = 0
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise TestEventError(f"expected an event mapping, got {entry!r}", index)
        repeat, every_ns, offset_ns = 1, TEST_STEP_NS, None
        raw = entry
        if is_wrapper(entry):
            raw = entry["event"]
            if not isinstance(raw, dict):
                raise TestEventError(f"'event' must be a mapping, got {raw!r}", index)
            repeat = entry.get("repeat", 1)
            if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
                raise TestEventError(f"'repeat' must be a whole number >= 1, got {repeat!r}", index)
            try:
                if "every" in entry:
                    every_ns = parse_duration_ns(entry["every"])
                if "offset" in entry:
                    offset_ns = parse_duration_ns(entry["offset"])
            except ValueError as exc:
                raise TestEventError(str(exc), index) from None
        if len(events) + repeat > MAX_TEST_EVENTS:
            raise TestEventError(f"a test may hold at most {MAX_TEST_EVENTS} events", index)
        start = TEST_BASE_NS + offset_ns if offset_ns is not None else cursor + TEST_STEP_NS
        for i in range(repeat):
            serial += 1
            data = dict(raw)
            if "timestamp" not in data:
                data["timestamp"] = format_timestamp(start + i * every_ns)
                cursor = start + i * every_ns
            if "id" not in data:
                data["id"] = f"{id_prefix}-{serial:04d}"
            try:
                events.append(Event.from_raw(data))
            except EventError as exc:
                raise TestEventError(str(exc), index) from None
    return events
