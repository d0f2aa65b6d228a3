"""The rule file model (pydantic) and the compiled rule the engine runs.

The model checks shape and types with located errors (unknown keys get "did you mean");
the loader adds the semantic checks (selections, condition, paths, templates) and builds
a ``CompiledRule``: everything precompiled so the engine does no parsing per event.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date as date_type
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alerting.durations import NS, Duration, parse_duration_ns, td_ns
from alerting.engine.fields import Getter
from alerting.engine.matchers import Predicate, Specializer
from alerting.engine.summary import SummaryTemplate
from alerting.engine.types import (
    AggregationSpec,
    DigestSpec,
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
AGGREGATION_KEYS = ("threshold", "distinct", "new_value", "travel", "sequence", "digest")

# Rule tests: timestamps for events that carry none start here and advance 1s per entry.
TEST_BASE_NS = parse_timestamp("2026-01-05T09:00:00Z")
TEST_STEP_NS = NS
MAX_TEST_EVENTS = 100_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RenderedExpectation(_Model):
    """What on-call will read: the alert rendered with the real templates and escaping.

    Each ``*_contains`` takes one text or a list (all must appear); ``slack_contains``
    looks in every text of the Slack message as sent (mrkdwn-escaped: ``&lt;`` for
    ``<``), ``email_subject`` is the exact subject line.
    """

    slack_contains: list[str] = Field(default_factory=list)
    email_subject: str | None = None
    email_subject_contains: list[str] = Field(default_factory=list)
    email_contains: list[str] = Field(default_factory=list)
    email_html_contains: list[str] = Field(default_factory=list)
    console_contains: list[str] = Field(default_factory=list)

    _lists = field_validator(
        "slack_contains",
        "email_subject_contains",
        "email_contains",
        "email_html_contains",
        "console_contains",
        mode="before",
    )(one_or_many)


class AlertExpectation(_Model):
    """What one expected alert must look like; every key given is checked."""

    group: dict[str, Any] | None = None
    count: int | None = Field(default=None, ge=1)
    summary_contains: str | None = None
    suppressed: int | None = Field(default=None, ge=0)
    rendered: RenderedExpectation | None = None


class Expect(_Model):
    """``alerts: N`` (+ checks on the first alert) or ``alerts: [{...}, ...]``."""

    alerts: int | list[AlertExpectation]
    group: dict[str, Any] | None = None
    count: int | None = Field(default=None, ge=1)
    summary_contains: str | None = None
    suppressed: int | None = Field(default=None, ge=0)
    rendered: RenderedExpectation | None = None

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
            rendered=self.rendered,
        )
        has_checks = any(
            v is not None
            for v in (
                self.group,
                self.count,
                self.summary_contains,
                self.suppressed,
                self.rendered,
            )
        )
        return self.alerts, [first] if has_checks else []


class RuleTestCase(_Model):
    """One inline test: events (a file path or a list) and what must come out."""

    name: str = Field(min_length=1)
    events: str | list[Any]
    expect: Expect


LEVEL_SEVERITY = {
    "informational": "info",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "critical": "critical",
}
UUID_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
RULE_NAME = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
DEFAULT_LOGSOURCE = {"product": "jumpcloud", "service": "directory_insights"}
# uuid5 namespace for the Sigma ids of rules written without one (CompiledRule.sigma_id).
RULE_UUID_NAMESPACE = uuid.UUID("5d7b3b52-9a43-4c0e-8f0a-2a6f7f1c9e31")


class LogSource(_Model):
    """Sigma's ``logsource``: what events a rule is written for (``convert`` maps it)."""

    category: str | None = None
    product: str | None = None
    service: str | None = None
    definition: str | None = None

    def covers(self, other: LogSource) -> bool:
        """Whether every part this one names is the same in ``other`` (filters, pySigma)."""
        return all(
            getattr(self, part) is None or getattr(self, part) == getattr(other, part)
            for part in ("category", "product", "service")
        )


class Related(_Model):
    id: str
    type: Literal["derived", "obsolete", "merged", "renamed", "similar"]


class SigmaMeta(_Model):
    """The keys Sigma 2.x gives every rule document (detection or correlation), plus the
    project's ``severity`` (the old spelling of ``level``) and ``enabled``.

    The rule id that alerts, routes and silences use (``rule_id``) is ``name`` when
    given, else ``id``: today's kebab-case ids stay as they are, a Sigma rule with only
    a UUID is known by the UUID in lower case.
    """

    title: str = Field(min_length=1)
    id: str | None = None
    name: str | None = None
    status: Literal["stable", "test", "experimental", "deprecated", "unsupported"] | None = None
    description: str = ""
    license: str | None = None
    author: str | None = None
    references: list[str] = Field(default_factory=list)
    # What on-call does next: a URL or a short text; shown in every message.
    runbook: str = ""
    date: date_type | str | None = None
    modified: date_type | str | None = None
    related: list[Related] = Field(default_factory=list)
    taxonomy: str | None = None
    tags: list[str] = Field(default_factory=list)
    falsepositives: list[str] = Field(default_factory=list)
    level: Literal["informational", "low", "medium", "high", "critical"] | None = None
    severity: Literal["info", "low", "medium", "high", "critical"] | None = None
    enabled: bool = True

    _fp = field_validator("falsepositives", "references", "tags", mode="before")(one_or_many)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not (UUID_ID.fullmatch(value) or RULE_ID.fullmatch(value)):
            raise ValueError(
                f"rule id {value!r} must be a UUID (Sigma, e.g. "
                "0e95725d-7320-415d-80f7-004da920fc11) or kebab-case (lower-case letters, "
                "digits and single dashes, e.g. failed-login-burst)"
            )
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not RULE_NAME.fullmatch(value):
            raise ValueError(
                f"rule name {value!r} must be lower-case letters and digits joined by single "
                "'-' or '_', e.g. failed-login-burst: it is the id alerts, routes and "
                "silences use"
            )
        return value

    @model_validator(mode="after")
    def _identity(self) -> SigmaMeta:
        if self.id is None and self.name is None:
            raise ValueError(
                "a rule needs a name (kebab-case, the id alerts, routes and silences use) "
                "or an id (a UUID): add name: my-rule"
            )
        if (
            self.level is not None
            and self.severity is not None
            and LEVEL_SEVERITY[self.level] != self.severity
        ):
            raise ValueError(
                f"level {self.level!r} and severity {self.severity!r} disagree: keep "
                "level (Sigma's key) and remove severity"
            )
        return self

    @property
    def rule_id(self) -> str:
        """The id alerts, routes and silences use (class docstring)."""
        return self.name or (self.id or "").lower()

    @property
    def alert_severity(self) -> str:
        """The alert's severity: ``level`` as the project spells it, medium when unset."""
        if self.severity is not None:
            return self.severity
        return LEVEL_SEVERITY[self.level or "medium"]


class RuleModel(SigmaMeta):
    """A detection rule document: Sigma's keys, then the project's extension keys
    (aggregations, ``by``, ``realert``, ``summary``, ``tests``; see docs/sigma.md)."""

    logsource: LogSource = Field(default_factory=lambda: LogSource(**DEFAULT_LOGSOURCE))
    detection: dict[str, Any]
    fields: list[str] = Field(default_factory=list)
    scope: list[str] = Field(default_factory=list)
    regression_tests_path: str | None = None
    simulation: list[Any] = Field(default_factory=list)
    threshold: ThresholdSpec | None = None
    distinct: DistinctSpec | None = None
    new_value: NewValueSpec | None = None
    travel: TravelSpec | None = None
    sequence: SequenceSpec | None = None
    digest: DigestSpec | None = None
    # Group key for rules without an aggregation (realert then applies per group).
    by: list[str] = Field(default_factory=list)
    realert: Duration = timedelta(0)
    summary: str | None = None
    tests: list[RuleTestCase] = Field(default_factory=list)

    _by = field_validator("by", mode="before")(one_or_many)

    def aggregation_keys(self) -> list[str]:
        return [k for k in AGGREGATION_KEYS if getattr(self, k) is not None]

    def aggregation(self) -> AggregationSpec | None:
        for key in AGGREGATION_KEYS:
            spec = getattr(self, key)
            if spec is not None:
                return spec
        return None


CORRELATION_TYPES = (
    "event_count",
    "value_count",
    "temporal",
    "temporal_ordered",
    "value_sum",
    "value_avg",
    "value_percentile",
)


class CorrelationSpec(_Model):
    """Sigma's ``correlation:`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: Literal[
        "event_count",
        "value_count",
        "temporal",
        "temporal_ordered",
        "value_sum",
        "value_avg",
        "value_percentile",
    ]
    rules: list[str] = Field(min_length=1)
    group_by: list[str] = Field(default_factory=list, alias="group-by")
    timespan: Duration
    condition: dict[str, Any] | None = None
    aliases: dict[str, dict[str, str]] = Field(default_factory=dict)

    _lists = field_validator("rules", "group_by", mode="before")(one_or_many)


class CorrelationModel(SigmaMeta):
    """A correlation rule document (Sigma), plus the project's alert keys."""

    correlation: CorrelationSpec
    generate: bool = False
    fields: list[str] = Field(default_factory=list)
    realert: Duration = timedelta(0)
    summary: str | None = None
    tests: list[RuleTestCase] = Field(default_factory=list)


class FilterModel(_Model):
    """A Sigma filter document: its condition is added (``and``) to the named rules'."""

    title: str = Field(min_length=1)
    id: str | None = None
    name: str | None = None
    description: str = ""
    author: str | None = None
    date: date_type | str | None = None
    modified: date_type | str | None = None
    taxonomy: str | None = None
    logsource: LogSource
    filter: dict[str, Any]


class PlaceholdersModel(_Model):
    """A document of ``expand`` placeholders: ``placeholders: {name: [values]}``."""

    placeholders: dict[str, list[str]]

    @field_validator("placeholders", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value


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
    model: RuleModel | CorrelationModel
    condition: Predicate
    condition_text: str
    event_types: frozenset[str] | None  # the index keys; None = catch-all
    selections: dict[str, Predicate]
    group_by: list[tuple[str, Getter]]
    aggregation: AggregationSpec | None
    realert_ns: int
    summary: SummaryTemplate | None
    step_predicates: tuple[Predicate, ...] = ()
    # Each step predicate partly evaluated for known field values, as ``specialize``
    # (None: no shortcut for that step).
    step_specializers: tuple[Specializer | None, ...] = ()
    # The condition partly evaluated for known top-level field values (the engine's
    # plans): True/False when that decides it, else what is left to check. None: no
    # shortcut.
    specialize: Specializer | None = None
    fields: list[str] = field(default_factory=list)
    tests: list[RuleTestCase] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    runbook: str = ""
    notes: list[Problem] = field(default_factory=list)
    # What the summary (alerting.engine.held.summary_needs) and the aggregation's details
    # (travel's places) read of held window events: the fields to keep, as keys from the
    # event root, or every event in full.
    held_paths: tuple[tuple[str, ...], ...] = ()
    hold_full: bool = False
    # Every detection section the condition reads: the rule's own, its filters', the
    # referenced rules' (correlations); what alerting.engine.reads looks at.
    detections: tuple[dict[str, Any], ...] = ()
    logsource: LogSource = field(default_factory=lambda: LogSource(**DEFAULT_LOGSOURCE))
    # Filters applied to this rule (their titles), correlations that use it (rule ids).
    filters: list[str] = field(default_factory=list)
    correlated_by: list[str] = field(default_factory=list)

    @property
    def meta(self) -> SigmaMeta:
        """Sigma's metadata of the rule (title, id, name, status, level, ...)."""
        return self.model

    @property
    def sigma_id(self) -> str:
        """A UUID for the rule as Sigma wants one: its own ``id`` when that is a UUID, else
        one derived from the rule id (uuid5), stable across runs, for exporting rules
        written with a kebab-case ``id`` (``alerting convert``)."""
        own = self.model.id
        if own is not None and UUID_ID.fullmatch(own):
            return own.lower()
        return str(uuid.uuid5(RULE_UUID_NAMESPACE, self.id))

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
